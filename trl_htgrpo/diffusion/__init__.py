"""Masked-diffusion machinery: mask schedules, unmasking rules, the trajectory-recording sampler, scoring and
the importance-ratio estimators."""

from .sampler import Trajectory, left_pad, sample_images
from .schedules import mask_ratio, masked_counts
from .unmasking import SAMPLERS

__all__ = ["Trajectory", "left_pad", "sample_images", "mask_ratio", "masked_counts", "SAMPLERS"]
