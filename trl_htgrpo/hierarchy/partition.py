"""Token partition: which tokens of each image are early **structure** tokens and which later **refinement** tokens.

HT-GRPO ("Sketch Then Paint", arXiv 2605.16842) splits each image's tokens "via entropy" along the rollout's
time axis; the exact rule is ours (docs/method.md). Shape legend: B images, N image tokens, T diffusion steps.
"""

from __future__ import annotations

import torch

from ..registry import Registry, Rule

PARTITIONS = Registry("partition", field="partition")


def entropy_boundary(masked_entropy: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boundary step t* per image: the first step whose mean still-masked entropy falls below
    ``threshold * H_0`` (``H_0`` = its value at step 0); T when it never does.

    masked_entropy: (B, T) -> (B,) long.
    """
    B, T = masked_entropy.shape
    below = masked_entropy < threshold * masked_entropy[:, :1]  # (B, T)
    first = torch.where(below.any(-1), below.float().argmax(-1), torch.full((B,), T, device=below.device))
    return first.long()


def reveal_rank(reveal_step: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Reveal order of every token (0 = first): by step, ties broken by higher confidence first. (B, N)."""
    key = reveal_step.double() - confidence.double().clamp(0, 1) * 0.5  # within a step, confident first
    return key.argsort(-1).argsort(-1)


def structure_count(fraction: float, N: int) -> int:
    """``round(fraction * N)`` kept in [1, N - 1], so that neither side of a fixed-size partition is empty."""
    return min(max(int(round(fraction * N)), 1), N - 1)


def never_empty(structure: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Keep the first revealed token as structure and the last as refinement, so neither side is empty."""
    N = structure.shape[-1]
    return (structure | (rank == 0)) & (rank != N - 1)


class Partition(Rule):
    """``partition(trajectory) -> (B, N) bool``, True for structure tokens; never empty on either side."""

    def __call__(self, traj) -> torch.Tensor:
        raise NotImplementedError


@PARTITIONS.register
class EntropyPartition(Partition):
    """Structure = tokens revealed before the step t* at which the mean entropy of still-masked positions
    first falls below ``entropy_threshold`` x its value at step 0 (:func:`entropy_boundary`)."""

    name = "entropy"
    knobs = ("entropy_threshold",)

    @classmethod
    def check(cls, args):
        t = args.entropy_threshold
        return [] if 0 < t < 1 else [f"entropy_threshold={t} must lie in (0, 1)"]

    def __call__(self, traj):
        t_star = entropy_boundary(traj.masked_entropy, self.args.entropy_threshold)  # (B,)
        structure = traj.reveal_step < t_star[:, None]  # (B, N)
        return never_empty(structure, reveal_rank(traj.reveal_step, traj.confidence))


@PARTITIONS.register
class StepPartition(Partition):
    """Structure = the first ``round(structure_fraction * N)`` tokens in reveal order (:func:`reveal_rank`)."""

    name = "step"
    knobs = ("structure_fraction",)

    @classmethod
    def check(cls, args):
        f = args.structure_fraction
        return [] if 0 < f < 1 else [f"structure_fraction={f} must lie in (0, 1)"]

    def __call__(self, traj):
        N = traj.reveal_step.shape[1]
        rank = reveal_rank(traj.reveal_step, traj.confidence)  # (B, N)
        return never_empty(rank < structure_count(self.args.structure_fraction, N), rank)


@PARTITIONS.register
class DecisionPartition(Partition):
    """Structure = the ``round(structure_fraction * N)`` tokens whose predictive entropy at reveal was highest
    (ties: earlier in reveal order first): the sampler's real choices, wherever in the rollout they fell.

    Reveal order puts confident filler first: in the shapes world the first 30% of revealed tokens are all
    background, while the 10% of highest entropy are 32% object tiles (6% of the image) and hold half of them
    (``benchmarks/partition_composition.py``). This rule lets the structure stage and two-level credit weigh the
    decisions that fix what the image shows rather than the order in which it was painted.
    """

    name = "decision"
    knobs = ("structure_fraction",)

    @classmethod
    def check(cls, args):
        return StepPartition.check(args)

    def __call__(self, traj):
        N = traj.entropy.shape[1]
        rank = reveal_rank(traj.reveal_step, traj.confidence)  # (B, N)
        by_rank = rank.argsort(-1)  # (B, N) token indices in reveal order
        h = traj.entropy.gather(-1, by_rank)  # (B, N) entropies in reveal order
        order = by_rank.gather(-1, h.argsort(dim=-1, descending=True, stable=True))  # (B, N) highest entropy first
        n = structure_count(self.args.structure_fraction, N)  # in [1, N - 1]: neither side is empty
        return torch.zeros_like(rank, dtype=torch.bool).scatter(-1, order[:, :n], True)
