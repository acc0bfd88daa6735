"""Tile codebook of the shapes world.

Code 0 is the background. Every colour ``c`` (index into :data:`COLORS`) owns two codes: a *fill*
shade ``1 + 2c`` for tiles inside an object and an *edge* shade ``2 + 2c`` for tiles on its
outline. The shade is the "detail" of an object: it never changes what the detector sees (both
shades are the same colour), so it plays the role of the refinement tokens of a real image, while
which tiles are coloured at all (the layout) is the structure.
"""

from __future__ import annotations

import numpy as np

GRID = 12  # tiles per side
TILE_PX = 4  # pixels per tile side
IMAGE_PX = GRID * TILE_PX  # 48
NUM_IMAGE_TOKENS = GRID * GRID  # N = 144

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
BACKGROUND_CODE = 0
CODEBOOK_SIZE = 1 + 2 * len(COLORS)  # V = 13

BACKGROUND_RGB = (24, 24, 24)
_FILL_RGB = {
    "red": (220, 40, 40),
    "orange": (240, 140, 20),
    "yellow": (235, 220, 40),
    "green": (40, 180, 60),
    "blue": (40, 90, 230),
    "purple": (150, 50, 200),
}


def _edge(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(v * 0.6) for v in rgb)  # a darker shade of the same colour


#: (V, 3) uint8 RGB of every code.
PALETTE = np.array(
    [BACKGROUND_RGB] + [s for c in COLORS for s in (_FILL_RGB[c], _edge(_FILL_RGB[c]))], dtype=np.uint8
)


def fill_code(color: str) -> int:
    return 1 + 2 * COLORS.index(color)


def edge_code(color: str) -> int:
    return 2 + 2 * COLORS.index(color)


def code_color(code: int) -> str | None:
    """Colour name of a code, None for the background."""
    return None if code == BACKGROUND_CODE else COLORS[(code - 1) // 2]
