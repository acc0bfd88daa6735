"""Mask schedules: the fraction of image tokens still masked after step t of T.

``gamma(r)`` with ``r = (t + 1) / T`` in (0, 1]: cosine ``cos(pi r / 2)`` (MaskGIT, MMaDA's
``t2i_generate``) or linear ``1 - r``. ``gamma(0) = 1`` (fully masked), ``gamma(1) = 0``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SCHEDULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "cosine": lambda r: torch.cos(r * math.pi / 2),
    "linear": lambda r: 1.0 - r,
}


def mask_ratio(r: torch.Tensor | float, schedule: str = "cosine") -> torch.Tensor:
    """gamma(r): fraction of tokens masked at progress r in [0, 1]."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown mask schedule {schedule!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](torch.as_tensor(r, dtype=torch.float64)).clamp(0.0, 1.0)


def masked_counts(num_tokens: int, steps: int, schedule: str = "cosine") -> list[int]:
    """Tokens still masked after each of the T steps: strictly decreasing, ending at 0, each step
    revealing at least one token. (T,) list of ints.

    >>> masked_counts(8, 4, "linear")
    [6, 4, 2, 0]
    """
    if not 1 <= steps <= num_tokens:
        raise ValueError(f"steps must lie in [1, {num_tokens}] (the number of image tokens), got {steps}")
    counts, prev = [], num_tokens
    for t in range(steps):
        left = int(math.floor(num_tokens * float(mask_ratio((t + 1) / steps, schedule)) + 1e-9))
        left = min(left, prev - 1)  # reveal at least one token
        left = max(left, steps - t - 1)  # keep one token for every later step
        counts.append(left)
        prev = left
    return counts
