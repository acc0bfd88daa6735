"""HT-GRPO's prompt-conditioned estimator from the fully masked state."""

from __future__ import annotations

import torch

from ...hierarchy.stages import default_stage_iterations, sample_subset
from .base import ESTIMATORS, Estimator, EstimatorPlan


@ESTIMATORS.register
class HTEstimator(Estimator):
    """One forward of the prompt plus the stage's image context, no guidance.

    Global and structure stages read ``log p(x_i | prompt, all image tokens masked)``; the refinement stage
    reads ``log p(x_i | prompt, sketch)``, where the sketch reveals the structure tokens and masks the
    refinement tokens (``refine_context="sketch"``), or the fully masked context (``"masked"``). In iteration
    k a random fraction ``token_sample_ratio`` of the stage's candidates carries loss (seeded per image and k).
    C <= 2 contexts, so old and reference log-probs cost at most two forwards each per rollout batch.
    Source: "Sketch Then Paint" (arXiv 2605.16842), README and method figure; our specification where it is
    silent: docs/method.md.
    """

    name = "ht"
    knobs = ("token_sample_ratio", "refine_context")
    REFINE_CONTEXTS = ("masked", "sketch")
    default_credit = "two_level"
    default_stage_iterations = staticmethod(default_stage_iterations)  # global, structure, refine: even split

    @classmethod
    def check(cls, args):
        errors = []
        if not 0 < args.token_sample_ratio <= 1:
            errors.append(f"token_sample_ratio={args.token_sample_ratio} must lie in (0, 1]")
        if args.refine_context not in cls.REFINE_CONTEXTS:
            errors.append(f"refine_context={args.refine_context!r} is unknown; choose one of {list(cls.REFINE_CONTEXTS)}")
        return errors

    def plan(self, traj, structure, candidates, stages, seeds):
        B, K, N = candidates.shape
        sketch = self.args.refine_context == "sketch" and "refine" in stages
        contexts = [torch.ones(B, N, dtype=torch.bool, device=candidates.device)] + ([~structure] if sketch else [])
        loss_mask = torch.zeros(B, K, len(contexts), N, dtype=torch.bool, device=candidates.device)
        for k, stage in enumerate(stages):
            chosen = sample_subset(candidates[:, k], self.args.token_sample_ratio, [s * 7919 + k for s in seeds])
            loss_mask[:, k, 1 if (sketch and stage == "refine") else 0] = chosen
        return EstimatorPlan(torch.stack(contexts, dim=1), loss_mask)
