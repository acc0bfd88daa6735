"""A detector for the shapes world that reads only pixels.

1. Tiles: each tile's mean colour is snapped to the nearest palette entry (the tile codec).
2. Components: tiles of the same colour name (both shades) joined by 8-connectivity.
3. Classes: every component is scored against every 3x3 template at every alignment that overlaps
   it; ``score = max IoU`` (1.0 for an exact shape), ``cls = argmax``.
The output is a list of :class:`~trl_htgrpo.rewards.geneval_rules.Detection` with pixel boxes,
the same interface a Mask2Former + CLIP detector of real photographs returns.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .codec import encode_image
from .palette import COLORS, GRID, TILE_PX, code_color
from .shapes import CLASSES, TEMPLATES
from ..rewards.geneval_rules import Detection

_TEMPLATE_CELLS = {c: [tuple(x) for x in np.argwhere(t)] for c, t in TEMPLATES.items()}


def _components(colors: np.ndarray) -> list[tuple[str, set[tuple[int, int]]]]:
    """8-connected components of equal colour name; colors: (GRID, GRID) object array of str|None."""
    seen = np.zeros(colors.shape, dtype=bool)
    out = []
    for r0, c0 in zip(*np.nonzero(colors != None)):  # noqa: E711 (elementwise)
        if seen[r0, c0]:
            continue
        color, stack, cells = colors[r0, c0], [(r0, c0)], set()
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            cells.add((int(r), int(c)))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < GRID and 0 <= cc < GRID and not seen[rr, cc] and colors[rr, cc] == color:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
        out.append((color, cells))
    return out


def _classify(cells: set[tuple[int, int]]) -> tuple[str, float]:
    rows = [r for r, _ in cells]
    cols = [c for _, c in cells]
    best_cls, best = CLASSES[0], -1.0
    for cls in CLASSES:
        tcells = _TEMPLATE_CELLS[cls]
        for r0 in range(min(rows) - 2, max(rows) + 1):
            for c0 in range(min(cols) - 2, max(cols) + 1):
                placed = {(r0 + i, c0 + j) for i, j in tcells}
                inter = len(cells & placed)
                iou = inter / (len(cells) + len(placed) - inter)
                if iou > best:
                    best_cls, best = cls, iou
    return best_cls, best


class ShapesDetector:
    """Detect coloured shapes in a shapes-world image.

    >>> from trl_htgrpo.toy import Scene, SceneObject, render_scene, decode_codes
    >>> img = decode_codes(render_scene(Scene([SceneObject("cross", "blue", 0, 0)])))
    >>> [(d.cls, d.color, d.score, d.box) for d in ShapesDetector()(img)]
    [('cross', 'blue', 1.0, (0.0, 0.0, 12.0, 12.0))]
    """

    classes: tuple[str, ...] = CLASSES
    colors: tuple[str, ...] = COLORS
    #: kept detections score above these (template IoU: 0.6 keeps a shape missing a tile or two and drops stray tiles)
    threshold: float = 0.6
    counting_threshold: float = 0.9

    def __call__(self, image: Image.Image) -> list[Detection]:
        codes = encode_image(image)  # (GRID, GRID); raises on a wrong size or mode
        colors = np.vectorize(code_color, otypes=[object])(codes)
        dets = []
        for color, cells in _components(colors):
            cls, score = _classify(cells)
            rows = [r for r, _ in cells]
            cols = [c for _, c in cells]
            box = (
                float(min(cols) * TILE_PX), float(min(rows) * TILE_PX),
                float((max(cols) + 1) * TILE_PX), float((max(rows) + 1) * TILE_PX),
            )
            dets.append(Detection(cls=cls, box=box, score=float(score), color=color))
        return dets
