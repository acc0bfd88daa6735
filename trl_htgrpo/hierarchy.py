"""The paper's core as pure tensor functions: token partition, stage schedule, credit weights.

Shape legend: B images, N image tokens, T diffusion steps, K inner iterations.

HT-GRPO ("Sketch Then Paint", arXiv 2605.16842) splits each image's tokens along the rollout's time
axis into early **structure** tokens (they fix the layout) and later **refinement** tokens, weights
per-token advantages towards structure (hierarchical credit assignment) and schedules the K inner
policy updates over a global, a structure and a refinement stage. Where the paper is silent, the
choices below are ours (see docs/method.md); each is a config knob of ``HTGRPOConfig``.
"""

from __future__ import annotations

from typing import Literal

import torch

Stage = Literal["global", "structure", "refine"]


def entropy_boundary(masked_entropy: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boundary step t* per image: the first step whose mean still-masked entropy falls below
    ``threshold * H_0`` (``H_0`` = its value at step 0); T when it never does.

    masked_entropy: (B, T) -> (B,) long.
    """
    B, T = masked_entropy.shape
    below = masked_entropy < threshold * masked_entropy[:, :1]  # (B, T)
    first = torch.where(below.any(-1), below.float().argmax(-1), torch.full((B,), T, device=below.device))
    return first.long()


def _rank_by_reveal(reveal_step: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Reveal order of every token (0 = first): by step, ties broken by higher confidence first. (B, N)."""
    key = reveal_step.double() - confidence.double().clamp(0, 1) * 0.5  # within a step, confident first
    return key.argsort(-1).argsort(-1)


def partition(
    reveal_step: torch.Tensor,  # (B, N) long
    confidence: torch.Tensor,  # (B, N)
    masked_entropy: torch.Tensor,  # (B, T)
    method: Literal["entropy", "step"] = "entropy",
    structure_fraction: float = 0.3,
    entropy_threshold: float = 0.5,
) -> torch.Tensor:
    """Structure mask (B, N) bool: True for structure tokens, False for refinement tokens.

    * ``"entropy"``: structure = tokens revealed before the boundary step t* (:func:`entropy_boundary`).
    * ``"step"``: structure = the first ``round(structure_fraction * N)`` tokens in reveal order.

    Never empty on either side: an image whose boundary would leave a side empty keeps its first
    revealed token as structure, or its last revealed token as refinement.
    """
    B, N = reveal_step.shape
    rank = _rank_by_reveal(reveal_step, confidence)  # (B, N)
    if method == "entropy":
        t_star = entropy_boundary(masked_entropy, entropy_threshold)  # (B,)
        struct = reveal_step < t_star[:, None]
    elif method == "step":
        n = min(max(int(round(structure_fraction * N)), 1), N - 1)
        struct = rank < n
    else:
        raise ValueError(f"unknown partition {method!r}; choose 'entropy' or 'step'")
    struct = struct | (rank == 0)  # at least one structure token
    struct = struct & (rank != N - 1)  # at least one refinement token
    return struct


def stage_schedule(stage_iterations: tuple[int, int, int]) -> list[Stage]:
    """Stage of each inner iteration k = 0..K-1: ``n_global`` global, then ``n_struct`` structure,
    then ``n_refine`` refinement iterations.

    >>> stage_schedule((1, 2, 1))
    ['global', 'structure', 'structure', 'refine']
    """
    n_global, n_struct, n_refine = stage_iterations
    return ["global"] * n_global + ["structure"] * n_struct + ["refine"] * n_refine


def stage_candidates(stage: Stage, structure: torch.Tensor) -> torch.Tensor:
    """Tokens that may carry loss in a stage: all, structure or refinement tokens. (B, N) bool."""
    if stage == "global":
        return torch.ones_like(structure)
    if stage == "structure":
        return structure.clone()
    if stage == "refine":
        return ~structure
    raise ValueError(f"unknown stage {stage!r}")


def sample_subset(candidates: torch.Tensor, ratio: float, seeds: list[int]) -> torch.Tensor:
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


def _unit_mean(w: torch.Tensor) -> torch.Tensor:
    return w / w.mean(-1, keepdim=True)


def credit_weights(
    structure: torch.Tensor,  # (B, N) bool
    reveal_step: torch.Tensor,  # (B, N) long
    entropy: torch.Tensor,  # (B, N) entropy at reveal
    steps: int,  # T
    method: Literal["uniform", "two_level", "continuous"] = "two_level",
    structure_weight: float = 2.0,
    strength: float = 1.0,
    signal: Literal["earliness", "entropy"] = "earliness",
) -> torch.Tensor:
    """Hierarchical credit: per-token weights w (B, N) with mean 1 per image, so that the per-token
    advantage ``A_{g,i} = A_g * w_{g,i}`` keeps the scale of ``A_g``.

    * ``"uniform"``: ``w = 1``.
    * ``"two_level"``: ``w = w_struct`` on structure tokens, 1 elsewhere, then rescaled to mean 1.
    * ``"continuous"``: ``w = 1 + lambda * phi`` rescaled to mean 1, with ``phi`` in [0, 1] either the
      earliness of reveal ``1 - s_i / (T - 1)`` or the entropy at reveal normalised per image.
    """
    if method == "uniform":
        return torch.ones(structure.shape, dtype=torch.float32, device=structure.device)
    if method == "two_level":
        return _unit_mean(torch.where(structure, float(structure_weight), 1.0).float())
    if method == "continuous":
        if signal == "earliness":
            phi = 1.0 - reveal_step.float() / max(steps - 1, 1)
        elif signal == "entropy":
            e = entropy.float()
            lo, hi = e.min(-1, keepdim=True).values, e.max(-1, keepdim=True).values
            phi = (e - lo) / (hi - lo).clamp(min=1e-8)
        else:
            raise ValueError(f"unknown credit signal {signal!r}; choose 'earliness' or 'entropy'")
        return _unit_mean(1.0 + strength * phi)
    raise ValueError(f"unknown credit {method!r}; choose 'uniform', 'two_level' or 'continuous'")
