"""Stage schedule, candidates and token subsets."""

import pytest
import torch

from trl_htgrpo.hierarchy import STAGES, default_stage_iterations, sample_subset, stage_candidates, stage_schedule


def test_stage_schedule_and_candidates():
    assert list(STAGES) == ["global", "structure", "refine"]
    assert stage_schedule((1, 2, 1)) == ["global", "structure", "structure", "refine"]
    s = torch.tensor([[True, False, True]])
    c = stage_candidates(["global", "structure", "refine"], s)  # (B, K, N)
    assert c.tolist() == [[[True, True, True], [True, False, True], [False, True, False]]]
    with pytest.raises(ValueError, match="one count per stage"):
        stage_schedule((1, 1))


def test_default_split():
    assert [default_stage_iterations(k) for k in (1, 3, 4, 5)] == [[1, 0, 0], [1, 1, 1], [2, 1, 1], [2, 2, 1]]


def test_sample_subset_size_membership_and_seeding():
    cand = torch.tensor([[True, True, False, True, True, True, False, False]])  # 5 candidates
    a = sample_subset(cand, 0.5, [7])
    assert a.sum().item() == 3  # ceil(2.5)
    assert not (a & ~cand).any()
    assert torch.equal(a, sample_subset(cand, 0.5, [7]))
    assert any(not torch.equal(a, sample_subset(cand, 0.5, [s])) for s in range(8, 20))
    assert sample_subset(cand, 0.01, [1]).sum().item() == 1  # at least one
    assert sample_subset(torch.zeros(1, 4, dtype=torch.bool), 0.5, [1]).sum().item() == 0
