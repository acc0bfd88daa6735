"""MaskGRPO baseline: remask a growing random fraction of the image per inner iteration."""

from __future__ import annotations

import torch

from .base import ESTIMATORS, Estimator, one_context_per_iteration, random_mask


@ESTIMATORS.register
class MaskGRPOEstimator(Estimator):
    """MaskGRPO (``martian422/MaskGRPO: grpo/mask_grpo_trainer.py``): in iteration k remask a random
    ``r_k = min(r_min + (1 - r_min)(k + 1)/K, 0.999)`` of the image tokens (``r_min`` =
    ``maskgrpo_min_mask_rate``, 0.6 to 0.8), the same mask for old, reference and current passes; loss on the
    remasked tokens. K contexts."""

    name = "maskgrpo"
    knobs = ("maskgrpo_min_mask_rate",)

    @classmethod
    def check(cls, args):
        r = args.maskgrpo_min_mask_rate
        return [] if 0 < r < 1 else [f"maskgrpo_min_mask_rate={r} must lie in (0, 1)"]

    def plan(self, traj, structure, candidates, stages, seeds):
        B, K, N = candidates.shape
        r_min = self.args.maskgrpo_min_mask_rate
        contexts = []
        for k in range(K):
            n = max(1, round(min(r_min + (1 - r_min) * (k + 1) / K, 0.999) * N))
            contexts.append(torch.stack([random_mask(N, n, seeds[b] * 17 + k, candidates.device) for b in range(B)]))
        return one_context_per_iteration(torch.stack(contexts, dim=1), candidates)
