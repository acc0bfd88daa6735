"""The inner loop's stages: which tokens may carry loss in each of the K policy updates of a rollout batch.

HT-GRPO ("Sketch Then Paint", arXiv 2605.16842): iterations 1..n_global "randomly sample from all tokens"
(global), then up to n_global + n_struct from structure tokens, then to K from refinement tokens.
``stage_iterations = (n_global, n_struct, n_refine)`` counts them in the order of :data:`STAGES`. The schedule is
applied in one place (:func:`stage_candidates`) for HT-GRPO and the baselines alike; each estimator then
decides which candidates carry loss and in which context. Shape legend: B images, K iterations, N tokens.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..registry import Registry, Rule

#: stages in schedule order (the order of ``stage_iterations``)
STAGES = Registry("stage", field="stage_iterations")


class Stage(Rule):
    """``stage.candidates(structure (B, N) bool) -> (B, N) bool``: tokens that may carry loss in the stage."""

    reads_partition: bool = True

    @staticmethod
    def candidates(structure: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@STAGES.register
class GlobalStage(Stage):
    """Every token."""

    name = "global"
    reads_partition = False

    @staticmethod
    def candidates(structure):
        return torch.ones_like(structure)


@STAGES.register
class StructureStage(Stage):
    """The structure tokens."""

    name = "structure"

    @staticmethod
    def candidates(structure):
        return structure.clone()


@STAGES.register
class RefineStage(Stage):
    """The refinement tokens."""

    name = "refine"

    @staticmethod
    def candidates(structure):
        return ~structure


def stage_schedule(stage_iterations: Sequence[int]) -> list[str]:
    """Stage of each inner iteration k = 0..K-1, in the order of :data:`STAGES`.

    >>> stage_schedule((1, 2, 1))
    ['global', 'structure', 'structure', 'refine']
    """
    if len(stage_iterations) != len(STAGES):
        raise ValueError(f"stage_iterations={list(stage_iterations)} needs one count per stage {list(STAGES)}")
    return [name for name, n in zip(STAGES, stage_iterations) for _ in range(int(n))]


def default_stage_iterations(num_iterations: int) -> list[int]:
    """Split K inner iterations as evenly as possible into (global, structure, refine), the
    remainder going to global first, then structure: 1 -> (1, 0, 0), 3 -> (1, 1, 1), 4 -> (2, 1, 1)."""
    base, rem = divmod(num_iterations, 3)
    return [base + (rem > 0), base + (rem > 1), base]


def stage_candidates(stages: Sequence[str], structure: torch.Tensor) -> torch.Tensor:
    """Candidates of every iteration: (B, N) structure -> (B, K, N) bool."""
    return torch.stack([STAGES.get_rule(s).candidates(structure) for s in stages], dim=1)


def sample_subset(candidates: torch.Tensor, ratio: float, seeds: Sequence[int]) -> torch.Tensor:
    """A random subset of ``ceil(ratio * |candidates|)`` tokens per image (at least one when any
    candidate exists), drawn with a generator seeded per image. candidates: (B, N) bool -> (B, N) bool.
    """
    B, N = candidates.shape
    out = torch.zeros_like(candidates)
    for b in range(B):
        idx = candidates[b].nonzero().squeeze(-1)
        if idx.numel() == 0:
            continue
        n = max(1, int(torch.ceil(torch.tensor(ratio * idx.numel())).item()))
        g = torch.Generator().manual_seed(int(seeds[b]) % (2**63 - 1))
        pick = idx[torch.randperm(idx.numel(), generator=g)[:n].to(idx.device)]
        out[b, pick] = True
    return out
