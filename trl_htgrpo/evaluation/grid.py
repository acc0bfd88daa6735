"""A labelled grid of samples: each image with its prompt and its verdict (a frame, green when correct)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw


def _frame_colour(verdict: bool | float) -> tuple[int, int, int]:
    """Green when correct (True or 1.0), red when wrong (False or 0.0), in between for a score in [0, 1]."""
    s = min(max(float(verdict), 0.0), 1.0)
    return int(round(220 * (1 - s))), int(round(160 * s)), 0


def image_grid(samples: Sequence[tuple[str, Image.Image, bool | float]], columns: int = 8, scale: int = 3,
               size: int | None = None, lines: int = 2) -> Image.Image:
    """A labelled grid of (prompt, image, verdict) samples; the frame marks the verdict (green correct, red wrong;
    a float score in [0, 1] between the two, printed after the prompt).

    ``scale``: pixel-art upscaling (nearest) of the shapes world's 48 px images; ``size``: instead, each image
    resized to ``size`` pixels wide (photographs: e.g. 256), text wrapped to ``lines`` lines of its width."""
    w, h = samples[0][1].size
    if size is not None:
        iw, ih, resample = size, max(1, round(h * size / w)), Image.LANCZOS
    else:
        iw, ih, resample = w * scale, h * scale, Image.NEAREST
    chars = max(8, iw // 6)  # PIL's default bitmap font is about 6 px per character
    cw, ch = iw + 8, ih + 16 + 12 * lines
    rows = math.ceil(len(samples) / columns)
    grid = Image.new("RGB", (columns * cw, rows * ch), "white")
    draw = ImageDraw.Draw(grid)
    for k, (prompt, img, verdict) in enumerate(samples):
        x, y = (k % columns) * cw, (k // columns) * ch
        draw.rectangle([x + 1, y + 1, x + cw - 2, y + ih + 6], outline=_frame_colour(verdict), width=3)
        grid.paste(img.convert("RGB").resize((iw, ih), resample), (x + 4, y + 4))
        text = prompt.removeprefix("a photo of ")
        if not isinstance(verdict, (bool, np.bool_)):
            text = f"[{float(verdict):.2f}] {text}"
        for line in range(lines):
            draw.text((x + 4, y + ih + 8 + 12 * line), text[line * chars:(line + 1) * chars], fill="black")
    return grid
