"""Importance-ratio estimators, one module each, registered in :data:`ESTIMATORS` by name."""

from .base import (
    ESTIMATORS, Estimator, EstimatorPlan, get_estimator, image_seeds, one_context_per_iteration, random_mask,
)
from .d1 import D1Estimator, prompt_token_mask
from .ht import HTEstimator
from .maskgrpo import MaskGRPOEstimator
from .trace import TraceEstimator
from .unigrpo import UniGRPOEstimator

__all__ = [
    "ESTIMATORS", "Estimator", "EstimatorPlan", "get_estimator", "image_seeds", "one_context_per_iteration",
    "random_mask", "HTEstimator", "UniGRPOEstimator", "D1Estimator", "MaskGRPOEstimator", "TraceEstimator",
    "prompt_token_mask",
]
