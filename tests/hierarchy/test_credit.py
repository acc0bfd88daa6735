"""Credit weights: hand-derived values."""

import pytest
import torch

from trl_htgrpo.hierarchy import CREDITS, ContinuousCredit, TwoLevelCredit, UniformCredit

from .helpers import args, traj


def test_two_level_weights_mean_one():
    s = torch.tensor([[True, False, False, False]])
    w = TwoLevelCredit(args(structure_weight=2.0))(traj([[0, 0, 0, 0]]), s)
    # raw [2, 1, 1, 1], mean 1.25 -> [1.6, 0.8, 0.8, 0.8]
    torch.testing.assert_close(w, torch.tensor([[1.6, 0.8, 0.8, 0.8]]), rtol=0, atol=1e-6)


def test_continuous_earliness_weights():
    w = ContinuousCredit(args(credit_strength=1.0))(traj([[0, 1, 2, 3]]), torch.zeros(1, 4, dtype=torch.bool))
    # phi = 1 - s/3 = [1, 2/3, 1/3, 0]; raw [2, 5/3, 4/3, 1], mean 1.5 -> [4/3, 10/9, 8/9, 2/3]
    torch.testing.assert_close(w, torch.tensor([[4 / 3, 10 / 9, 8 / 9, 2 / 3]]), rtol=0, atol=1e-6)


def test_continuous_entropy_and_uniform_weights():
    t = traj([[0, 0, 0, 0]], entropy=[[0.0, 1.0, 2.0, 1.0]])  # phi = [0, .5, 1, .5]; raw [1, 2, 3, 2] (lambda 2), mean 2
    w = ContinuousCredit(args(credit_strength=2.0, credit_signal="entropy"))(t, torch.zeros(1, 4, dtype=torch.bool))
    torch.testing.assert_close(w, torch.tensor([[0.5, 1.0, 1.5, 1.0]]), rtol=0, atol=1e-6)
    u = UniformCredit(args())(traj([[0, 0, 0], [0, 0, 0]]), torch.ones(2, 3, dtype=torch.bool))
    assert torch.equal(u, torch.ones(2, 3))


def test_registry_names_and_checks():
    assert sorted(CREDITS) == ["continuous", "two_level", "uniform"]
    assert CREDITS["two_level"].reads_partition and not CREDITS["continuous"].reads_partition
    with pytest.raises(ValueError, match="unknown credit 'layered'"):
        CREDITS.get_rule("layered")
    assert ContinuousCredit.check(args(credit_signal="size")) == [
        "credit_signal='size' is unknown; choose one of ['earliness', 'entropy']"]
    assert TwoLevelCredit.check(args(structure_weight=0)) == ["structure_weight=0 must be > 0"]
