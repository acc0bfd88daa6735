"""Masked-diffusion machinery: mask schedules, the trajectory-recording sampler, estimators."""

from .sampler import Trajectory, left_pad, sample_images
from .schedules import mask_ratio, masked_counts

__all__ = ["Trajectory", "left_pad", "sample_images", "mask_ratio", "masked_counts"]
