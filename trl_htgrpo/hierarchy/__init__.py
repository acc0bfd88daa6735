"""The paper's core as pure tensor code: token partition, credit weights, stage schedule (one module each).

Shape legend: B images, N image tokens, T diffusion steps, K inner iterations.
"""

from .credit import CREDITS, ContinuousCredit, Credit, TwoLevelCredit, UniformCredit, unit_mean
from .partition import PARTITIONS, DecisionPartition, EntropyPartition, Partition, StepPartition, entropy_boundary, reveal_rank
from .stages import STAGES, Stage, default_stage_iterations, sample_subset, stage_candidates, stage_schedule

__all__ = [
    "PARTITIONS", "Partition", "DecisionPartition", "EntropyPartition", "StepPartition", "entropy_boundary", "reveal_rank",
    "CREDITS", "Credit", "UniformCredit", "TwoLevelCredit", "ContinuousCredit", "unit_mean",
    "STAGES", "Stage", "stage_schedule", "default_stage_iterations", "stage_candidates", "sample_subset",
]
