"""MMaDA's UniGRPO baseline (random masking)."""

from __future__ import annotations

import torch

from .base import ESTIMATORS, Estimator, one_context_per_iteration


@ESTIMATORS.register
class UniGRPOEstimator(Estimator):
    """MMaDA's UniGRPO (``Gen-Verse/dLLM-RL: train/rl_mmada.py``, random masking): per image, inner iteration
    and copy draw ``t ~ U[lo, hi]`` (``unigrpo_mask_range``, default [0.1, 0.9]) and mask each image token with
    probability t; the loss is on the masked tokens. With ``unigrpo_num_copies`` = M > 1, each iteration reads M
    such copies and its loss is one GRPO loss over all their (copy, token) pairs (TRL's normalisation over the
    union). K * M contexts, M per iteration."""

    name = "unigrpo"
    knobs = ("unigrpo_mask_range", "unigrpo_num_copies")

    @classmethod
    def check(cls, args):
        errors = []
        lo, hi = args.unigrpo_mask_range
        if not 0 < lo <= hi <= 1:
            errors.append(f"unigrpo_mask_range={list(args.unigrpo_mask_range)} must satisfy 0 < lo <= hi <= 1")
        if args.unigrpo_num_copies < 1:
            errors.append(f"unigrpo_num_copies={args.unigrpo_num_copies} must be >= 1")
        return errors

    def plan(self, traj, structure, candidates, stages, seeds):
        B, K, N = candidates.shape
        lo, hi = self.args.unigrpo_mask_range
        M = int(self.args.unigrpo_num_copies)
        contexts = []
        for r in range(K * M):  # context r: iteration r // M, copy r % M
            key = (r // M) + 1_000_003 * (r % M)  # copy 0: the single-copy masks
            rows = []
            for b in range(B):
                g = torch.Generator().manual_seed((seeds[b] * 31 + key) % (2**63 - 1))
                t = lo + (hi - lo) * torch.rand((), generator=g).item()
                m = torch.rand(N, generator=g) < t
                if not m.any():
                    m[torch.randint(N, (1,), generator=g)] = True
                rows.append(m)
            contexts.append(torch.stack(rows).to(candidates.device))
        return one_context_per_iteration(torch.stack(contexts, dim=1), candidates, M)
