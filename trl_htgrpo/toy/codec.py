"""Tile codec: codes <-> PIL images, exact inverses of each other.

``decode_codes`` paints every code as a ``TILE_PX`` square of its palette colour;
``encode_image`` reads the mean colour of each tile and takes the nearest palette entry, so
``encode_image(decode_codes(c)) == c`` for every code grid ``c``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .palette import CODEBOOK_SIZE, GRID, IMAGE_PX, PALETTE, TILE_PX


def decode_codes(codes) -> Image.Image:
    """codes: (N,) or (GRID, GRID) ints in [0, V) (numpy, list or torch) -> RGB PIL image."""
    raw = np.asarray(codes.tolist() if hasattr(codes, "tolist") else codes)
    if raw.shape not in ((GRID * GRID,), (GRID, GRID)):
        raise ValueError(f"codes must have shape ({GRID * GRID},) or ({GRID}, {GRID}), got {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {raw.dtype}")
    arr = raw.astype(np.int64)
    if arr.min() < 0 or arr.max() >= CODEBOOK_SIZE:
        raise ValueError(f"codes must lie in [0, {CODEBOOK_SIZE}), got range [{arr.min()}, {arr.max()}]")
    grid = arr.reshape(GRID, GRID)
    pixels = PALETTE[grid].repeat(TILE_PX, axis=0).repeat(TILE_PX, axis=1)  # (H, W, 3)
    return Image.fromarray(pixels, mode="RGB")


def check_image(image: Image.Image) -> np.ndarray:
    """Validate a shapes-world image and return its (H, W, 3) uint8 pixels."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.mode != "RGB":
        raise ValueError(f"shapes-world images must be mode 'RGB', got mode {image.mode!r}; use image.convert('RGB')")
    if image.size != (IMAGE_PX, IMAGE_PX):
        raise ValueError(
            f"shapes-world images must be {IMAGE_PX}x{IMAGE_PX} px ({GRID}x{GRID} tiles of {TILE_PX} px), "
            f"got {image.size[0]}x{image.size[1]}"
        )
    return np.asarray(image, dtype=np.uint8)


def encode_image(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> (GRID, GRID) int64 codes, nearest palette colour of each tile's mean."""
    px = check_image(image).astype(np.float64)
    tiles = px.reshape(GRID, TILE_PX, GRID, TILE_PX, 3).mean(axis=(1, 3))  # (GRID, GRID, 3)
    dist = ((tiles[:, :, None, :] - PALETTE[None, None].astype(np.float64)) ** 2).sum(-1)  # (GRID, GRID, V)
    return dist.argmin(-1)
