"""Shape classes of the shapes world: 3x3 tile templates that a detector tells apart."""

from __future__ import annotations

import numpy as np


def _t(*rows: str) -> np.ndarray:
    return np.array([[ch == "X" for ch in row] for row in rows], dtype=bool)


#: class name -> (3, 3) bool template. IoU between any two is at most 8/9 (square vs circle).
TEMPLATES: dict[str, np.ndarray] = {
    "square": _t("XXX", "XXX", "XXX"),
    "circle": _t("XXX", "X.X", "XXX"),
    "triangle": _t("..X", ".XX", "XXX"),
    "cross": _t(".X.", "XXX", ".X."),
}
CLASSES: tuple[str, ...] = tuple(TEMPLATES)
SHAPE_SIZE = 3
