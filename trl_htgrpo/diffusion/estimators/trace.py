"""TraceRL baseline: score each block of reveal steps given the rollout's own earlier blocks."""

from __future__ import annotations

import torch

from .base import ESTIMATORS, Estimator, EstimatorPlan


@ESTIMATORS.register
class TraceEstimator(Estimator):
    """TraceRL (``Gen-Verse/dLLM-RL``): reveal steps grouped in blocks of ``trace_block_size`` steps; for block b
    the context is the rollout's own state before b (every token revealed earlier is visible, the rest masked)
    and the loss is on the tokens revealed in b. ceil(T / s) contexts, all of them in every inner iteration."""

    name = "trace"
    knobs = ("trace_block_size",)

    @classmethod
    def check(cls, args):
        s = args.trace_block_size
        return [] if s >= 1 else [f"trace_block_size={s} must be >= 1"]

    def plan(self, traj, structure, candidates, stages, seeds):
        block = traj.reveal_step // self.args.trace_block_size  # (B, N)
        n_blocks = -(-traj.steps // self.args.trace_block_size)
        own = block[:, None, :] == torch.arange(n_blocks, device=block.device)[None, :, None]  # (B, C, N)
        contexts = block[:, None, :] >= torch.arange(n_blocks, device=block.device)[None, :, None]  # masked from b on
        loss_mask = own[:, None] & candidates[:, :, None]  # (B, K, C, N)
        return EstimatorPlan(contexts, loss_mask)
