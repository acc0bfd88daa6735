"""Importance-ratio estimators: which masked contexts a GRPO update reads log-probabilities from, and how.

The likelihood of a whole image under a masked-diffusion model sums over unmasking orders and is intractable,
so every diffusion-GRPO method scores ``log p(x_i | context)`` of the rollout's tokens ``x_i`` in some partially
masked *context* of the same image. An :class:`Estimator` owns both halves:

* :meth:`Estimator.plan`: one rollout batch -> an :class:`EstimatorPlan` (its C contexts, and in every inner
  iteration k which tokens carry loss and in which context);
* :meth:`Estimator.score`: the log-probs of the tokens a pass asks for, in their contexts (a subclass changes
  what the model sees through :meth:`Estimator.context_prompt`, e.g. d1's prompt masking).

Shape legend: B images, C contexts, K inner iterations, N image tokens, P prompt tokens.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import torch

from ...registry import Registry, Rule
from ..scoring import context_logps

ESTIMATORS = Registry("estimator", field="estimator")


@dataclass
class EstimatorPlan:
    """What the K inner iterations of one rollout batch score (batch-first, so it survives TRL's shuffling)."""

    contexts: torch.Tensor  # (B, C, N) bool: True = the image token is masked in context c
    loss_mask: torch.Tensor  # (B, K, C, N) bool: in iteration k, token i carries loss, scored in context c

    def __post_init__(self):
        B, C, N = self.contexts.shape
        if self.loss_mask.dim() != 4 or (self.loss_mask.shape[0], *self.loss_mask.shape[2:]) != (B, C, N):
            raise ValueError(f"loss_mask {tuple(self.loss_mask.shape)} does not match contexts {(B, C, N)}")
        if bool((self.loss_mask & ~self.contexts[:, None]).any()):
            raise ValueError("a token carries loss in a context where it is visible")

    @property
    def num_contexts(self) -> int:
        return self.contexts.shape[1]


def image_seeds(codes: torch.Tensor, seed: int) -> list[int]:
    """A stable seed per image from its tokens and the run's seed (independent of batch order and rank)."""
    return [zlib.crc32(c.cpu().numpy().astype("int64").tobytes(), seed & 0xFFFFFFFF) for c in codes]


def random_mask(N: int, n: int, seed: int, device) -> torch.Tensor:
    """(N,) bool with exactly n True at positions drawn by a seeded generator."""
    g = torch.Generator().manual_seed(int(seed) % (2**63 - 1))
    m = torch.zeros(N, dtype=torch.bool)
    m[torch.randperm(N, generator=g)[:n]] = True
    return m.to(device)


def one_context_per_iteration(contexts: torch.Tensor, candidates: torch.Tensor, per_iteration: int = 1) -> EstimatorPlan:
    """Iteration k reads contexts ``k * M .. k * M + M - 1`` (M = ``per_iteration``) with loss on every candidate
    they mask. contexts: (B, K * M, N) bool; candidates: (B, K, N) bool."""
    B, C, N = contexts.shape
    K = candidates.shape[1]
    owner = torch.arange(C, device=contexts.device) // per_iteration  # (C,) iteration of each context
    mine = owner[None, :] == torch.arange(K, device=contexts.device)[:, None]  # (K, C)
    loss_mask = contexts[:, None] & candidates[:, :, None] & mine[None, :, :, None]  # (B, K, C, N)
    return EstimatorPlan(contexts, loss_mask)


class Estimator(Rule):
    """Base class: subclasses set ``name`` (and ``knobs``), implement :meth:`plan`, and may change
    :meth:`context_prompt`. Register with ``@ESTIMATORS.register``."""

    #: ``credit`` when the config leaves it None (the baselines: GRPO's uniform credit)
    default_credit: str = "uniform"

    @staticmethod
    def default_stage_iterations(num_iterations: int) -> list[int]:
        """``stage_iterations`` when the config leaves it None (the baselines: every iteration global)."""
        return [num_iterations, 0, 0]

    def plan(self, traj, structure: torch.Tensor, candidates: torch.Tensor, stages: Sequence[str],
             seeds: Sequence[int]) -> EstimatorPlan:
        """traj: the rollout's :class:`~trl_htgrpo.diffusion.sampler.Trajectory` (B images); structure: (B, N) bool
        partition; candidates: (B, K, N) bool, the tokens the stage schedule allows to carry loss in iteration k;
        stages: the K stage names; seeds: one per image (:func:`image_seeds`)."""
        raise NotImplementedError

    def context_prompt(self, backbone, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, seeds: Sequence[int],
                       context: int) -> torch.Tensor:
        """The prompt ids (B, P) the model sees with context ``context``: unchanged by default."""
        return prompt_ids

    def score(self, model, backbone, prompt_ids, prompt_mask, targets, contexts, need, seeds, temperature=1.0,
              batch_size=None, guidance_scale=0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs and entropies (B, C, N) of ``targets`` (B, N) in each context (B, C, N), computed for the
        rows and contexts in which ``need`` (B, C, N) asks for any token (0 elsewhere and at visible tokens):
        one forward per (row, needed context), two with ``guidance_scale`` (:func:`~..scoring.context_logps`)."""
        B, C, N = contexts.shape
        logps = torch.zeros(B, C, N, device=targets.device)
        ents = torch.zeros(B, C, N, device=targets.device)
        for c in range(C):
            rows = need[:, c].any(-1).nonzero().squeeze(-1)  # (r,)
            if rows.numel() == 0:
                continue
            row_seeds = [seeds[r] for r in rows.tolist()]
            prompt = self.context_prompt(backbone, prompt_ids[rows], prompt_mask[rows], row_seeds, c)
            lp, en = context_logps(model, backbone, prompt, prompt_mask[rows], targets[rows], contexts[rows, c],
                                   temperature, batch_size, guidance_scale)
            logps[rows, c], ents[rows, c] = lp, en
        return logps, ents


def get_estimator(name: str) -> type[Estimator]:
    return ESTIMATORS.get_rule(name)
