"""d1's diffu-GRPO baseline: the whole image masked, prompt tokens masked at random."""

from __future__ import annotations

import torch

from .base import ESTIMATORS, Estimator, one_context_per_iteration


def prompt_token_mask(prompt_mask: torch.Tensor, prob: float, seeds, context: int) -> torch.Tensor:
    """Prompt tokens to mask in ``context``: each real token with probability ``prob``, drawn over the real
    tokens only (a left-padded suffix) with a generator seeded per image and context, so the draw does not
    depend on how much padding the batch has. prompt_mask: (B, P) 1 = token -> (B, P) bool."""
    B, P = prompt_mask.shape
    out = torch.zeros(B, P, dtype=torch.bool)
    lengths = prompt_mask.bool().sum(-1).tolist()
    for b, (seed, n) in enumerate(zip(seeds, lengths)):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + context) % (2**63 - 1))
        out[b, P - n :] = torch.rand(n, generator=g) < prob
    return out.to(prompt_mask.device) & prompt_mask.bool()


@ESTIMATORS.register
class D1Estimator(Estimator):
    """d1's diffu-GRPO (``dllm-reasoning/d1: diffu-grpo/diffu_grpo_trainer.py``): the whole image masked, each
    prompt token masked with probability ``d1_prompt_mask_prob`` (0.15), a new prompt mask per inner
    iteration; loss on every image token. K contexts (the same image mask, K prompt masks)."""

    name = "d1"
    knobs = ("d1_prompt_mask_prob",)

    @classmethod
    def check(cls, args):
        p = args.d1_prompt_mask_prob
        return [] if 0 <= p < 1 else [f"d1_prompt_mask_prob={p} must lie in [0, 1)"]

    def plan(self, traj, structure, candidates, stages, seeds):
        B, K, N = candidates.shape
        full = torch.ones(B, K, N, dtype=torch.bool, device=candidates.device)
        return one_context_per_iteration(full, candidates)

    def context_prompt(self, backbone, prompt_ids, prompt_mask, seeds, context):
        drop = prompt_token_mask(prompt_mask, float(self.args.d1_prompt_mask_prob), seeds, context)  # (B, P)
        return torch.where(drop, backbone.mask_token_id, prompt_ids)
