"""Importance-ratio estimators: which masked contexts a GRPO update reads log-probabilities from.

The likelihood of a whole image under a masked-diffusion model sums over unmasking orders and is
intractable, so every diffusion-GRPO method scores ``log p(x_i | context)`` of the rollout's tokens
``x_i`` in some partially masked *context* of the same image. An estimator turns one rollout batch
into an :class:`EstimatorPlan`:

* ``contexts`` (B, C, N) bool: the C contexts, True where an image token is masked;
* ``token_context`` (B, K * M, N) long: in inner iteration k and copy j (row k * M + j), the context
  whose log-prob token i's loss reads (-1: no loss). M = ``copies`` is 1 except for UniGRPO with
  ``unigrpo_num_copies`` > 1, whose iteration loss is the mean of its M copies' GRPO losses.

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
    token_context: torch.Tensor  # (B, K * copies, N) long, -1 = no loss
    #: probability of masking each prompt token in every context (d1), drawn by :func:`prompt_mask`
    prompt_mask_prob: float = 0.0
    #: loss terms per inner iteration (UniGRPO's masked copies per image), averaged
    copies: int = 1

    def __post_init__(self):
        B, C, N = self.contexts.shape
        if self.token_context.shape[0] != B or self.token_context.shape[2] != N:
            raise ValueError(f"token_context {tuple(self.token_context.shape)} does not match contexts {(B, C, N)}")
        if self.token_context.shape[1] % self.copies:
            raise ValueError(f"token_context has {self.token_context.shape[1]} rows, not a multiple of copies={self.copies}")
        if int(self.token_context.max()) >= C:
            raise ValueError("token_context names a context that does not exist")
        # a token can only be scored where its context masks it
        used = self.token_context.clamp(min=0)
        masked = self.contexts.gather(1, used)  # (B, K, N)
        if bool(((self.token_context >= 0) & ~masked).any()):
            raise ValueError("a token carries loss in a context where it is visible")


def prompt_mask(prompt_mask: torch.Tensor, prob: float, seeds: list[int], context: int) -> torch.Tensor:
    """Prompt tokens to mask in ``context`` (d1): each real prompt token with probability ``prob``,
    drawn with a generator seeded per image and context. prompt_mask: (B, P) 1 = real token -> (B, P) bool."""
    out = torch.zeros(prompt_mask.shape, dtype=torch.bool)
    for b, seed in enumerate(seeds):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + context) % (2**63 - 1))
        out[b] = torch.rand(prompt_mask.shape[1], generator=g) < prob
    return out.to(prompt_mask.device) & prompt_mask.bool()


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

    @property
    def copies(self) -> int:
        """Loss terms per inner iteration (rows of ``token_context`` per iteration)."""
        return 1

    @property
    def prompt_mask_prob(self) -> float:
        """Probability of masking each prompt token in every context (d1 only)."""
        return 0.0

    def plan(self, codes: torch.Tensor, structure: torch.Tensor, seeds: list[int], num_iterations: int,
             reveal_step: torch.Tensor | None = None) -> EstimatorPlan:
        """codes, structure, reveal_step: (B, N); seeds: one per image; -> the plan of K iterations."""
        raise NotImplementedError


def _random_mask(N: int, n: int, seed: int, device) -> torch.Tensor:
    """(N,) bool with exactly n True at positions drawn by a seeded generator."""
    g = torch.Generator().manual_seed(int(seed) % (2**63 - 1))
    m = torch.zeros(N, dtype=torch.bool)
    m[torch.randperm(N, generator=g)[:n]] = True
    return m.to(device)


def _per_iteration_plan(contexts: list[torch.Tensor], copies: int = 1) -> EstimatorPlan:
    """Context r in loss row r (iteration r // copies), loss on every token it masks.
    contexts: K * copies tensors (B, N) bool."""
    ctx = torch.stack(contexts, dim=1)  # (B, K * copies, N)
    index = torch.arange(ctx.shape[1], device=ctx.device)[None, :, None].expand_as(ctx)
    return EstimatorPlan(ctx, torch.where(ctx, index, -1), copies=copies)


def restrict_to_stages(plan: EstimatorPlan, stages: list[str], structure: torch.Tensor) -> EstimatorPlan:
    """A baseline under a stage schedule: in iteration k only the tokens of stage k's candidates
    (all, structure or refinement, :func:`~trl_htgrpo.hierarchy.stage_candidates`) keep their loss;
    contexts, and so old and reference log-probs, are unchanged. structure: (B, N) bool."""
    token_context = plan.token_context.clone()  # (B, K * M, N)
    M = plan.copies
    for k, stage in enumerate(stages):
        keep = stage_candidates(stage, structure)[:, None, :]  # (B, 1, N)
        rows = token_context[:, k * M : (k + 1) * M]
        token_context[:, k * M : (k + 1) * M] = torch.where(keep, rows, -1)
    return EstimatorPlan(plan.contexts, token_context, plan.prompt_mask_prob, M)


class HTEstimator(Estimator):
    """HT-GRPO's prompt-conditioned estimator from the fully masked state.

    One forward of the prompt plus the stage's image context, no guidance. Global and structure
    stages read ``log p(x_i | prompt, all image tokens masked)``; the refinement stage reads
    ``log p(x_i | prompt, sketch)`` where the sketch reveals the structure tokens and masks the
    refinement tokens (``refine_context="sketch"``), or the fully masked context (``"masked"``).
    In iteration k a random fraction ``token_sample_ratio`` of the stage's candidates carries loss
    (seeded per image and k). C <= 2 contexts, so old and reference log-probs cost at most two
    forwards each per rollout batch. Source: "Sketch Then Paint" (arXiv 2605.16842), README and
    method figure; our specification where it is silent: docs/method.md.
    """

    name = "ht"
    knobs = ("token_sample_ratio", "refine_context")

    def plan(self, codes, structure, seeds, num_iterations, reveal_step=None):
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


class UniGRPOEstimator(Estimator):
    """MMaDA's UniGRPO (``Gen-Verse/dLLM-RL: train/rl_mmada.py``, random masking): per image, inner
    iteration and copy draw ``t ~ U[lo, hi]`` (``unigrpo_mask_range``, default [0.1, 0.9]) and mask
    each image token with probability t; the loss is on the masked tokens, averaged over the
    ``unigrpo_num_copies`` (M, default 1) copies. K * M contexts, M per iteration."""

    name = "unigrpo"
    knobs = ("unigrpo_mask_range", "unigrpo_num_copies")

    @property
    def copies(self) -> int:
        return int(self.args.unigrpo_num_copies)

    def plan(self, codes, structure, seeds, num_iterations, reveal_step=None):
        B, N = codes.shape
        lo, hi = self.args.unigrpo_mask_range
        contexts = []
        for r in range(num_iterations * self.copies):  # row r = iteration r // M, copy r % M
            key = (r // self.copies) + 1_000_003 * (r % self.copies)  # copy 0: the single-copy masks
            rows = []
            for b in range(B):
                g = torch.Generator().manual_seed((seeds[b] * 31 + key) % (2**63 - 1))
                t = lo + (hi - lo) * torch.rand((), generator=g).item()
                m = torch.rand(N, generator=g) < t
                if not m.any():
                    m[torch.randint(N, (1,), generator=g)] = True
                rows.append(m)
            contexts.append(torch.stack(rows).to(codes.device))
        return _per_iteration_plan(contexts, self.copies)


class D1Estimator(Estimator):
    """d1's diffu-GRPO (``dllm-reasoning/d1: diffu-grpo/diffu_grpo_trainer.py``): the whole image
    masked, each prompt token masked with probability ``d1_prompt_mask_prob`` (0.15), a new prompt
    mask per inner iteration; loss on every image token. K contexts."""

    name = "d1"
    knobs = ("d1_prompt_mask_prob",)

    @property
    def prompt_mask_prob(self) -> float:
        return float(self.args.d1_prompt_mask_prob)

    def plan(self, codes, structure, seeds, num_iterations, reveal_step=None):
        full = torch.ones(codes.shape, dtype=torch.bool, device=codes.device)
        plan = _per_iteration_plan([full] * num_iterations)
        plan.prompt_mask_prob = self.prompt_mask_prob
        return plan


class MaskGRPOEstimator(Estimator):
    """MaskGRPO (``martian422/MaskGRPO: grpo/mask_grpo_trainer.py``): in iteration k remask a random
    ``r_k = min(r_min + (1 - r_min)(k + 1)/K, 0.999)`` of the image tokens (``r_min`` =
    ``maskgrpo_min_mask_rate``, 0.6 to 0.8), the same mask for old, reference and current passes;
    loss on the remasked tokens. K contexts."""

    name = "maskgrpo"
    knobs = ("maskgrpo_min_mask_rate",)

    def plan(self, codes, structure, seeds, num_iterations, reveal_step=None):
        B, N = codes.shape
        r_min, K = self.args.maskgrpo_min_mask_rate, num_iterations
        contexts = []
        for k in range(K):
            n = max(1, round(min(r_min + (1 - r_min) * (k + 1) / K, 0.999) * N))
            contexts.append(torch.stack([_random_mask(N, n, seeds[b] * 17 + k, codes.device) for b in range(B)]))
        return _per_iteration_plan(contexts)


class TraceEstimator(Estimator):
    """TraceRL (``Gen-Verse/dLLM-RL``): reveal steps grouped in blocks of ``trace_block_size`` steps;
    for block b the context is the rollout's own state before b (every token revealed earlier is
    visible, the rest masked) and the loss is on the tokens revealed in b. ceil(T / s) contexts,
    all of them in every inner iteration."""

    name = "trace"
    knobs = ("trace_block_size",)

    def plan(self, codes, structure, seeds, num_iterations, reveal_step=None):
        if reveal_step is None:
            raise ValueError("the trace estimator needs the rollout's reveal steps")
        block = reveal_step // self.args.trace_block_size  # (B, N)
        n_blocks = int(block.max()) + 1
        contexts = torch.stack([block >= b for b in range(n_blocks)], dim=1)  # (B, C, N): masked from block b on
        token_context = block[:, None, :].expand(-1, num_iterations, -1).contiguous()  # (B, K, N)
        return EstimatorPlan(contexts, token_context)


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (HTEstimator, UniGRPOEstimator, D1Estimator, MaskGRPOEstimator, TraceEstimator)
}


def get_estimator(name: str) -> type[Estimator]:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid estimators: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]
