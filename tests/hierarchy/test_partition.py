"""Token partitions: hand-derived values."""

import pytest
import torch

from trl_htgrpo.hierarchy import PARTITIONS, DecisionPartition, EntropyPartition, StepPartition, entropy_boundary

from .helpers import args, traj


def test_entropy_boundary_first_step_below_threshold():
    # H_0 = 2.0, threshold 0.5 -> level 1.0; 0.9 at step 2 is the first below it; the second row never drops.
    h = torch.tensor([[2.0, 1.5, 0.9, 0.5], [2.0, 1.9, 1.8, 1.7]])
    assert entropy_boundary(h, 0.5).tolist() == [2, 4]


def test_entropy_partition_is_reveal_step_before_boundary():
    t = traj([[0, 0, 1, 2, 3, 2]], masked_entropy=[[2.0, 1.5, 0.9, 0.5]])  # t* = 2
    assert EntropyPartition(args())(t).tolist() == [[True, True, True, False, False, False]]


def test_step_partition_uses_reveal_order_with_confidence_ties():
    # keys step - 0.5*conf: [0.55, -0.1, -0.4, 0.95] -> order 2, 1, 0, 3; the first half is {2, 1}
    t = traj([[1, 0, 0, 1]], confidence=[[0.9, 0.2, 0.8, 0.1]])
    assert StepPartition(args(structure_fraction=0.5))(t).tolist() == [[False, True, True, False]]


def test_decision_partition_takes_the_highest_entropy_at_reveal():
    # reveal order 2, 3, 1, 0; entropies 0.1, 0.9, 0.5, 0.9: tokens 1 and 3 tie at 0.9 and token 3 was revealed first
    t = traj([[3, 2, 0, 1]], entropy=[[0.1, 0.9, 0.5, 0.9]])
    assert DecisionPartition(args(structure_fraction=0.25))(t).tolist() == [[False, False, False, True]]
    assert DecisionPartition(args(structure_fraction=0.5))(t).tolist() == [[False, True, False, True]]
    assert DecisionPartition(args(structure_fraction=0.75))(t).tolist() == [[False, True, True, True]]
    # the same reveal order gives the step partition the first-revealed tokens instead
    assert StepPartition(args(structure_fraction=0.5))(t).tolist() == [[False, False, True, True]]


def test_partitions_are_never_empty():
    flat = [[2.0, 1.9, 1.8, 1.7]]  # never drops: everything would be structure
    t = traj([[0, 1, 2, 3]], masked_entropy=flat)
    assert EntropyPartition(args())(t).tolist() == [[True, True, True, False]]
    assert StepPartition(args(structure_fraction=0.01))(t).tolist() == [[True, False, False, False]]  # round(0.04) = 0
    assert StepPartition(args(structure_fraction=0.99))(t).tolist() == [[True, True, True, False]]  # round(3.96) = 4
    level = traj([[0, 1, 2, 3]], entropy=[[1.0, 1.0, 1.0, 1.0]])  # all tied: reveal order decides
    assert DecisionPartition(args(structure_fraction=0.01))(level).tolist() == [[True, False, False, False]]
    assert DecisionPartition(args(structure_fraction=0.99))(level).tolist() == [[True, True, True, False]]


def test_registry_names_and_knob_checks():
    assert sorted(PARTITIONS) == ["decision", "entropy", "step"]
    with pytest.raises(ValueError, match=r"unknown partition 'layout'; valid partitions: \['decision', 'entropy', 'step'\]"):
        PARTITIONS.get_rule("layout")
    assert StepPartition.check(args(structure_fraction=1.0)) == ["structure_fraction=1.0 must lie in (0, 1)"]
    assert DecisionPartition.check(args(structure_fraction=0.0)) == ["structure_fraction=0.0 must lie in (0, 1)"]
    assert EntropyPartition.check(args(entropy_threshold=0.0)) == ["entropy_threshold=0.0 must lie in (0, 1)"]
