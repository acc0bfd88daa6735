"""Hierarchical credit assignment: per-token weights ``w_{g,i}`` of the per-token advantage ``A_{g,i} = A_g w_{g,i}``.

Every weight map is rescaled to mean 1 per image, so the advantage keeps the scale of ``A_g``
("Sketch Then Paint", arXiv 2605.16842: larger weights on key structural tokens; the forms are ours,
docs/method.md). Shape legend: B images, N image tokens, T diffusion steps.
"""

from __future__ import annotations

import torch

from ..registry import Registry, Rule

CREDITS = Registry("credit", field="credit")


def unit_mean(w: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B, N) rescaled to mean 1 per row."""
    return w / w.mean(-1, keepdim=True)


class Credit(Rule):
    """``credit(trajectory, structure (B, N) bool) -> (B, N) float`` weights with mean 1 per image."""

    #: whether the weights depend on the structure/refinement partition
    reads_partition: bool = False

    def __call__(self, traj, structure: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@CREDITS.register
class UniformCredit(Credit):
    """``w = 1``: GRPO's image-level advantage on every token."""

    name = "uniform"

    def __call__(self, traj, structure):
        return torch.ones(structure.shape, dtype=torch.float32, device=structure.device)


@CREDITS.register
class TwoLevelCredit(Credit):
    """``w = w_struct`` on structure tokens and 1 elsewhere, rescaled to mean 1 (``structure_weight`` = w_struct)."""

    name = "two_level"
    knobs = ("structure_weight",)
    reads_partition = True

    @classmethod
    def check(cls, args):
        w = args.structure_weight
        return [] if w > 0 else [f"structure_weight={w} must be > 0"]

    def __call__(self, traj, structure):
        return unit_mean(torch.where(structure, float(self.args.structure_weight), 1.0).float())


def earliness(traj) -> torch.Tensor:
    """``phi_i = 1 - s_i / (T - 1)``: 1 for tokens of the first step, 0 for the last. (B, N)."""
    return 1.0 - traj.reveal_step.float() / max(traj.steps - 1, 1)


def entropy_at_reveal(traj) -> torch.Tensor:
    """Entropy of the predictive distribution at reveal, min-max normalised per image to [0, 1]. (B, N)."""
    e = traj.entropy.float()
    lo, hi = e.min(-1, keepdim=True).values, e.max(-1, keepdim=True).values
    return (e - lo) / (hi - lo).clamp(min=1e-8)


@CREDITS.register
class ContinuousCredit(Credit):
    """``w_i = 1 + lambda * phi_i`` rescaled to mean 1, ``lambda`` = ``credit_strength``, ``phi`` in [0, 1] from
    ``credit_signal``: :func:`earliness` or :func:`entropy_at_reveal`."""

    name = "continuous"
    knobs = ("credit_strength", "credit_signal")
    SIGNALS = {"earliness": earliness, "entropy": entropy_at_reveal}

    @classmethod
    def check(cls, args):
        if args.credit_signal not in cls.SIGNALS:
            return [f"credit_signal={args.credit_signal!r} is unknown; choose one of {sorted(cls.SIGNALS)}"]
        return []

    def __call__(self, traj, structure):
        phi = self.SIGNALS[self.args.credit_signal](traj)  # (B, N)
        return unit_mean(1.0 + self.args.credit_strength * phi)
