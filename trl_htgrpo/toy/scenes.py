"""Scenes of the shapes world: objects placed on the tile grid, and a sampler of scenes that
satisfy a GenEval metadata record (used to make pretraining data and ground-truth tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..rewards.geneval_rules import relation
from .palette import BACKGROUND_CODE, COLORS, GRID, TILE_PX, edge_code, fill_code
from .shapes import SHAPE_SIZE, TEMPLATES


@dataclass(frozen=True)
class SceneObject:
    cls: str
    color: str
    row: int  # top tile of the template
    col: int  # left tile of the template

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Pixel box (x0, y0, x1, y1) of the template's tight extent."""
        rows, cols = np.nonzero(TEMPLATES[self.cls])
        return (
            float((self.col + cols.min()) * TILE_PX), float((self.row + rows.min()) * TILE_PX),
            float((self.col + cols.max() + 1) * TILE_PX), float((self.row + rows.max() + 1) * TILE_PX),
        )


@dataclass
class Scene:
    objects: list[SceneObject] = field(default_factory=list)


def render_scene(scene: Scene) -> np.ndarray:
    """Scene -> (GRID, GRID) int64 codes. Object tiles alternate fill/edge shades in a checkerboard
    anchored at the template's corner: the shade is detail, the tile set is layout."""
    codes = np.full((GRID, GRID), BACKGROUND_CODE, dtype=np.int64)
    for obj in scene.objects:
        t = TEMPLATES[obj.cls]
        for i, j in zip(*np.nonzero(t)):
            codes[obj.row + i, obj.col + j] = fill_code(obj.color) if (i + j) % 2 == 0 else edge_code(obj.color)
    return codes


def _separated(a: SceneObject, b: SceneObject) -> bool:
    """Templates' 3x3 boxes are at least one tile apart (so objects never touch, even diagonally)."""
    return abs(a.row - b.row) > SHAPE_SIZE or abs(a.col - b.col) > SHAPE_SIZE


def sample_scene(metadata: Mapping[str, Any], rng: np.random.Generator, max_tries: int = 1000) -> Scene:
    """A random scene that satisfies ``metadata`` under GenEval's rules (rejection sampling).

    Objects get the colour their clause asks for, else a random one; they never touch; clauses with
    a position are placed until the relation holds for every pair, as the rule engine checks it.
    """
    for _ in range(max_tries):
        placed: list[list[SceneObject]] = []
        ok = True
        for clause in metadata["include"]:
            group = []
            for _ in range(int(clause["count"])):
                for _ in range(100):
                    obj = SceneObject(
                        clause["class"], clause.get("color") or COLORS[rng.integers(len(COLORS))],
                        int(rng.integers(GRID - SHAPE_SIZE + 1)), int(rng.integers(GRID - SHAPE_SIZE + 1)),
                    )
                    if all(_separated(obj, o) for g in placed for o in g) and all(_separated(obj, o) for o in group):
                        group.append(obj)
                        break
                else:
                    ok = False
            position = clause.get("position")
            if ok and position is not None:
                rel, j = position[0], int(position[1])
                ok = all(rel in relation(a.box, b.box) for a in group for b in placed[j])
            if not ok:
                break
            placed.append(group)
        if ok:
            return Scene([o for g in placed for o in g])
    raise RuntimeError(f"could not place a scene for {metadata.get('prompt', metadata)!r} in {max_tries} tries")
