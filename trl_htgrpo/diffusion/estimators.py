"""Importance-ratio estimators: which masked contexts a GRPO update reads log-probabilities from.

The likelihood of a whole image under a masked-diffusion model sums over unmasking orders and is
intractable, so every diffusion-GRPO method scores ``log p(x_i | context)`` of the rollout's tokens
``x_i`` in some partially masked *context* of the same image. An estimator turns one rollout batch
into an :class:`EstimatorPlan`:

* ``contexts`` (B, C, N) bool: the C contexts, True where an image token is masked;
* ``token_context`` (B, K, N) long: in inner iteration k, the context whose log-prob token i's loss
  reads (-1: token i carries no loss in iteration k).

Old and reference log-probs are computed once per rollout batch for every context (C forwards each),
the policy's in iteration k once per context that iteration uses. Plans are stored batch-first in the
generation batch, so they survive TRL's shuffling and splitting of its buffer unchanged.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..hierarchy import sample_subset, stage_candidates, stage_schedule


@dataclass
class EstimatorPlan:
    contexts: torch.Tensor  # (B, C, N) bool, True = masked
    token_context: torch.Tensor  # (B, K, N) long, -1 = no loss

    def __post_init__(self):
        B, C, N = self.contexts.shape
        if self.token_context.shape[0] != B or self.token_context.shape[2] != N:
            raise ValueError(f"token_context {tuple(self.token_context.shape)} does not match contexts {(B, C, N)}")
        if int(self.token_context.max()) >= C:
            raise ValueError("token_context names a context that does not exist")
        # a token can only be scored where its context masks it
        used = self.token_context.clamp(min=0)
        masked = self.contexts.gather(1, used)  # (B, K, N)
        if bool(((self.token_context >= 0) & ~masked).any()):
            raise ValueError("a token carries loss in a context where it is visible")


def sample_seeds(codes: torch.Tensor, seed: int) -> list[int]:
    """A stable seed per image from its tokens and the run's seed (independent of batch order)."""
    return [zlib.crc32(c.cpu().numpy().astype("int64").tobytes(), seed & 0xFFFFFFFF) for c in codes]


class Estimator:
    """Base class: subclasses set ``name`` and implement :meth:`plan`."""

    name: ClassVar[str]
    #: config fields that belong to this estimator alone (given with another estimator -> error)
    knobs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, args):
        self.args = args

    def plan(self, codes: torch.Tensor, structure: torch.Tensor, seeds: list[int], num_iterations: int) -> EstimatorPlan:
        raise NotImplementedError


class HTEstimator(Estimator):
    """HT-GRPO's prompt-conditioned estimator from the fully masked state.

    One forward of the prompt plus the stage's image context, no guidance. Global and structure
    stages read ``log p(x_i | prompt, all image tokens masked)``; the refinement stage reads
    ``log p(x_i | prompt, sketch)`` where the sketch reveals the structure tokens and masks the
    refinement tokens (``refine_context="sketch"``), or the fully masked context (``"masked"``).
    In iteration k a random fraction ``token_sample_ratio`` of the stage's candidates carries loss
    (seeded per image and k). C <= 2 contexts, so old and reference log-probs cost at most two
    forwards each per rollout batch.
    """

    name = "ht"
    knobs = ("stage_iterations", "token_sample_ratio", "refine_context")

    def plan(self, codes, structure, seeds, num_iterations):
        B, N = structure.shape
        stages = stage_schedule(self.args.stage_iterations)
        assert len(stages) == num_iterations
        sketch = self.args.refine_context == "sketch" and "refine" in stages
        contexts = [torch.ones_like(structure)] + ([~structure] if sketch else [])
        token_context = torch.full((B, num_iterations, N), -1, dtype=torch.long, device=structure.device)
        for k, stage in enumerate(stages):
            chosen = sample_subset(
                stage_candidates(stage, structure), self.args.token_sample_ratio, [s * 7919 + k for s in seeds]
            )
            token_context[:, k][chosen] = 1 if (sketch and stage == "refine") else 0
        return EstimatorPlan(torch.stack(contexts, dim=1), token_context)


ESTIMATORS: dict[str, type[Estimator]] = {"ht": HTEstimator}


def get_estimator(name: str) -> type[Estimator]:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid estimators: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]
