"""JPEG compressibility, DDPO's weights-free reward (Black et al. 2023, ``kvablack/ddpo-pytorch: ddpo_pytorch/
rewards.py``): the negative size of the image saved as JPEG at quality 95, in kB. Simpler images score higher;
``incompressibility`` is its negation. Useful as a reward that needs no model, e.g. for smoke runs.

>>> from PIL import Image
>>> flat, noise = Image.new("RGB", (64, 64), (90, 90, 90)), Image.effect_noise((64, 64), 80).convert("RGB")
>>> r = JPEGCompressibility()(["a", "b"], [flat, noise])
>>> r[0] > r[1]
True
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from PIL import Image


class JPEGCompressibility:
    """``-kB(JPEG(image, quality=95))`` per image (``sign=-1``: incompressibility)."""

    def __init__(self, quality: int = 95, sign: float = 1.0):
        self.quality, self.sign = quality, sign
        self.__name__ = "compressibility" if sign > 0 else "incompressibility"

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Image.Image], **kwargs: Any) -> list[float]:
        out = []
        for image in completions:
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="JPEG", quality=self.quality)
            out.append(-self.sign * buf.tell() / 1000.0)
        return out
