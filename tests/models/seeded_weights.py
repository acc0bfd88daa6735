"""Seeded random weights defined by key names and shapes alone (pure torch, no package imports).

Used by the MAGVIT-v2 parity test and by the one-off script that ran the published code to record its goldens,
so both sides get bit-identical weights whatever framework builds the module.
"""

from __future__ import annotations

import math

import torch

#: sizes of the small parity model: 3 levels (2 resamplings, f = 4), uneven block counts, nin_shortcuts in both halves
TINY_SIZES = dict(
    ch=32,
    encoder_ch_mult=(1, 2, 2),
    encoder_num_res_blocks=(1, 2, 1),
    decoder_ch_mult=(1, 1, 2),
    decoder_num_res_blocks=(2, 1, 2),
)


def seeded_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """One fp32 tensor per key, drawn in sorted key order from ``torch.Generator().manual_seed(seed)``.

    key ending in ``.bias``       -> 0.1 * randn
    other 1-D key (GroupNorm)     -> 1 + 0.1 * randn
    other key (conv weight)       -> randn / sqrt(fan_in), fan_in = prod(shape[1:])
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        noise = torch.randn(shape, generator=g, dtype=torch.float32)
        if key.endswith(".bias"):
            out[key] = 0.1 * noise
        elif len(shape) == 1:
            out[key] = 1.0 + 0.1 * noise
        else:
            out[key] = noise / math.sqrt(math.prod(shape[1:]))
    return out
