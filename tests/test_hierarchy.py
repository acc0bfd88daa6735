"""Partition, stage schedule and credit weights: hand-derived values."""

import pytest
import torch

from trl_htgrpo.hierarchy import (
    credit_weights, entropy_boundary, partition, sample_subset, stage_candidates, stage_schedule,
)


def test_entropy_boundary_first_step_below_threshold():
    # H_0 = 2.0, threshold 0.5 -> level 1.0; 0.9 at step 2 is the first below it; the second row never drops.
    h = torch.tensor([[2.0, 1.5, 0.9, 0.5], [2.0, 1.9, 1.8, 1.7]])
    assert entropy_boundary(h, 0.5).tolist() == [2, 4]


def test_entropy_partition_is_reveal_step_before_boundary():
    reveal = torch.tensor([[0, 0, 1, 2, 3, 2]])
    conf = torch.full((1, 6), 0.5)
    h = torch.tensor([[2.0, 1.5, 0.9, 0.5]])  # t* = 2
    assert partition(reveal, conf, h, "entropy", entropy_threshold=0.5).tolist() == [[True, True, True, False, False, False]]


def test_step_partition_uses_reveal_order_with_confidence_ties():
    # keys step - 0.5*conf: [0.55, -0.1, -0.4, 0.95] -> order 2, 1, 0, 3; the first half is {2, 1}
    reveal = torch.tensor([[1, 0, 0, 1]])
    conf = torch.tensor([[0.9, 0.2, 0.8, 0.1]])
    s = partition(reveal, conf, torch.ones(1, 2), "step", structure_fraction=0.5)
    assert s.tolist() == [[False, True, True, False]]


def test_partitions_are_never_empty():
    reveal = torch.tensor([[0, 1, 2, 3]])
    conf = torch.full((1, 4), 0.5)
    flat = torch.tensor([[2.0, 1.9, 1.8, 1.7]])  # never drops: everything would be structure
    assert partition(reveal, conf, flat, "entropy").tolist() == [[True, True, True, False]]
    s = partition(reveal, conf, flat, "step", structure_fraction=0.01)  # round(0.04) = 0 -> at least one
    assert s.tolist() == [[True, False, False, False]]
    s = partition(reveal, conf, flat, "step", structure_fraction=0.99)  # round(3.96) = 4 -> at most N-1
    assert s.tolist() == [[True, True, True, False]]
    with pytest.raises(ValueError, match="unknown partition"):
        partition(reveal, conf, flat, "layout")


def test_stage_schedule_and_candidates():
    assert stage_schedule((1, 2, 1)) == ["global", "structure", "structure", "refine"]
    s = torch.tensor([[True, False, True]])
    assert stage_candidates("global", s).tolist() == [[True, True, True]]
    assert stage_candidates("structure", s).tolist() == [[True, False, True]]
    assert stage_candidates("refine", s).tolist() == [[False, True, False]]


def test_sample_subset_size_membership_and_seeding():
    cand = torch.tensor([[True, True, False, True, True, True, False, False]])  # 5 candidates
    a = sample_subset(cand, 0.5, [7])
    assert a.sum().item() == 3  # ceil(2.5)
    assert not (a & ~cand).any()
    assert torch.equal(a, sample_subset(cand, 0.5, [7]))
    assert any(not torch.equal(a, sample_subset(cand, 0.5, [s])) for s in range(8, 20))
    assert sample_subset(cand, 0.01, [1]).sum().item() == 1  # at least one
    assert sample_subset(torch.zeros(1, 4, dtype=torch.bool), 0.5, [1]).sum().item() == 0


def test_two_level_weights_mean_one():
    s = torch.tensor([[True, False, False, False]])
    w = credit_weights(s, torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4), 4, "two_level", structure_weight=2.0)
    # raw [2, 1, 1, 1], mean 1.25 -> [1.6, 0.8, 0.8, 0.8]
    torch.testing.assert_close(w, torch.tensor([[1.6, 0.8, 0.8, 0.8]]), rtol=0, atol=1e-6)


def test_continuous_earliness_weights():
    reveal = torch.tensor([[0, 1, 2, 3]])
    w = credit_weights(torch.zeros(1, 4, dtype=torch.bool), reveal, torch.zeros(1, 4), 4, "continuous", strength=1.0)
    # phi = 1 - s/3 = [1, 2/3, 1/3, 0]; raw [2, 5/3, 4/3, 1], mean 1.5 -> [4/3, 10/9, 8/9, 2/3]
    torch.testing.assert_close(w, torch.tensor([[4 / 3, 10 / 9, 8 / 9, 2 / 3]]), rtol=0, atol=1e-6)


def test_continuous_entropy_and_uniform_weights():
    ent = torch.tensor([[0.0, 1.0, 2.0, 1.0]])  # phi = [0, .5, 1, .5]; raw [1, 2, 3, 2] (lambda 2), mean 2
    w = credit_weights(torch.zeros(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.long), ent, 4,
                       "continuous", strength=2.0, signal="entropy")
    torch.testing.assert_close(w, torch.tensor([[0.5, 1.0, 1.5, 1.0]]), rtol=0, atol=1e-6)
    u = credit_weights(torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.long), ent[:, :3].repeat(2, 1), 4, "uniform")
    assert torch.equal(u, torch.ones(2, 3))
    with pytest.raises(ValueError, match="unknown credit"):
        credit_weights(u.bool(), u.long(), u, 4, "layered")
