"""GenEval's rule engine, independent of any detector.

It follows ``djghosh13/geneval: evaluation/evaluate_images.py`` exactly for strict correctness:

* per class, keep detections with ``score > threshold`` (``counting_threshold`` for prompts tagged
  ``counting``), most confident first, at most ``max_objects`` (16);
* an include clause ``{class, count, color?, position?}`` takes the ``count`` most confident
  detections of its class and fails if there are fewer; with a colour it fails unless at least
  ``count`` of them have that colour; with ``position = [relation, j]`` it fails if clause ``j``
  failed or if any of its objects against any object of clause ``j`` lacks the relation;
* an exclude clause ``{class, count}`` fails if at least ``count`` detections of the class exist.

Relation of box A to box B (pixel boxes ``x0, y0, x1, y1``): centres ``c`` and sizes ``d``,
``offset = c_A - c_B``, ``revised = max(|offset| - 0.1 (d_A + d_B), 0) * sign(offset)``; no
relation if all ``|revised| < 1e-3``, else ``(dx, dy) = revised / ||offset||`` and "left of" if
``dx < -0.5``, "right of" if ``dx > 0.5``, "above" if ``dy < -0.5``, "below" if ``dy > 0.5``.

The partial-credit score (the dense reward Flow-GRPO and MaskGRPO train on) is ours, in the same
spirit: every clause earns a credit in [0, 1] and the score is their mean. An include clause earns
``found / count`` (``found`` capped at ``count``), times the fraction of those with the right colour
when a colour is asked, and 0 when its position fails; an exclude clause earns 1 or 0. Strict
correctness implies score 1; score 1 implies strict correctness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
#: GenEval's colour vocabulary; a detector may know only some of them.
GENEVAL_COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)
POSITION_THRESHOLD = 0.1


@dataclass(frozen=True)
class Detection:
    """One detected object: its class, colour (None if unknown), pixel box and confidence."""

    cls: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    color: str | None = None


@dataclass(frozen=True)
class Verdict:
    """Outcome of one image against one prompt's metadata."""

    correct: bool  # GenEval's strict correctness
    score: float  # partial credit in [0, 1]
    reason: str  # first failing clause, "" when correct


def relation(box_a: Sequence[float], box_b: Sequence[float]) -> set[str]:
    """Relations of box A to box B, as GenEval computes them (see the module docstring)."""
    a = np.asarray(box_a, dtype=np.float64).reshape(2, 2)
    b = np.asarray(box_b, dtype=np.float64).reshape(2, 2)
    center_a, center_b = a.mean(0), b.mean(0)
    dim_a, dim_b = np.abs(a[1] - a[0]), np.abs(b[1] - b[0])
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels


def validate_metadata(
    metadata: Mapping[str, Any], classes: Iterable[str] | None = None, colors: Iterable[str] | None = None
) -> None:
    """Raise ``ValueError`` naming the field and the allowed values when metadata is malformed.

    ``classes``/``colors``: the vocabularies of the detector in use (None: anything goes for classes,
    GenEval's ten colours for colours).
    """
    classes = None if classes is None else tuple(classes)
    colors = GENEVAL_COLORS if colors is None else tuple(colors)
    tag = metadata.get("tag")
    if tag is not None and tag not in TAGS:
        raise ValueError(f"metadata field 'tag' is {tag!r}; allowed values: {list(TAGS)}")
    include = metadata.get("include")
    if not include:
        raise ValueError("metadata field 'include' is missing or empty; give a list of {'class', 'count', ...} clauses")
    for name in ("include", "exclude"):
        for i, clause in enumerate(metadata.get(name) or []):
            where = f"metadata field '{name}[{i}]"
            if not isinstance(clause, Mapping):
                raise ValueError(f"{where}' must be a dict with 'class' and 'count', got {clause!r}")
            if clause.get("class") is None:
                raise ValueError(f"{where}.class' is missing; allowed values: {list(classes) if classes else 'a class name'}")
            if classes is not None and clause["class"] not in classes:
                raise ValueError(f"{where}.class' is {clause['class']!r}; allowed values: {list(classes)}")
            count = clause.get("count")
            if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
                raise ValueError(f"{where}.count' must be an integer >= 1, got {count!r}")
            color = clause.get("color")
            if color is not None and color not in colors:
                raise ValueError(f"{where}.color' is {color!r}; allowed values: {list(colors)}")
            position = clause.get("position")
            if position is not None:
                if name == "exclude":
                    raise ValueError(f"{where}.position' is not allowed in an exclude clause")
                if len(position) != 2 or position[0] not in RELATIONS:
                    raise ValueError(f"{where}.position' must be [relation, index] with relation in {list(RELATIONS)}, got {position!r}")
                j = position[1]
                if not isinstance(j, (int, np.integer)) or isinstance(j, bool) or not 0 <= j < i:
                    raise ValueError(
                        f"{where}.position' index {j!r} must be an integer naming an earlier include clause "
                        f"(0..{i - 1}), as in GenEval's [relation, index]"
                    )


def evaluate(
    detections: Sequence[Detection],
    metadata: Mapping[str, Any],
    threshold: float = 0.3,
    counting_threshold: float = 0.9,
    max_objects: int = 16,
) -> Verdict:
    """Apply GenEval's rules to one image's detections.

    >>> d = [Detection("square", (0, 0, 12, 12), 1.0, "red"), Detection("circle", (24, 0, 36, 12), 1.0, "blue")]
    >>> meta = {"tag": "position", "include": [{"class": "circle", "count": 1},
    ...         {"class": "square", "count": 1, "position": ["left of", 0]}]}
    >>> evaluate(d, meta).correct
    True
    """
    thr = counting_threshold if metadata.get("tag") == "counting" else threshold
    by_class: dict[str, list[Detection]] = {}
    for det in sorted(detections, key=lambda d: -d.score):
        if det.score > thr and len(by_class.setdefault(det.cls, [])) < max_objects:
            by_class[det.cls].append(det)
        by_class.setdefault(det.cls, [])

    correct, reason, credits = True, "", []
    matched: list[list[Detection] | None] = []  # objects of each include clause, None when it failed
    for i, clause in enumerate(metadata["include"]):
        cls, count = clause["class"], int(clause["count"])
        found = by_class.get(cls, [])[:count]
        credit = min(len(found), count) / count
        ok = len(found) >= count
        why = "" if ok else f"expected {count} {cls}, found {len(found)}"
        color = clause.get("color")
        if color is not None:
            n_right = sum(d.color == color for d in found)
            credit *= n_right / max(len(found), 1)
            if ok and n_right < count:
                ok, why = False, f"expected {color} {cls}, found {[d.color for d in found]}"
        position = clause.get("position")
        if position is not None:
            rel, j = position[0], int(position[1])
            others = matched[j] if j < len(matched) else None
            if others is None:
                ok, credit, why = False, 0.0, why or f"no {rel} target (clause {j} failed)"
            elif not all(rel in relation(a.box, b.box) for a in found for b in others) or not found:
                ok, credit, why = False, 0.0, why or f"expected {cls} {rel} target"
        matched.append(found if ok else None)
        credits.append(credit)
        if not ok and correct:
            correct, reason = False, why
    for clause in metadata.get("exclude") or []:
        cls, count = clause["class"], int(clause["count"])
        ok = len(by_class.get(cls, [])) < count
        credits.append(1.0 if ok else 0.0)
        if not ok and correct:
            correct, reason = False, f"expected fewer than {count} {cls}"
    return Verdict(correct=correct, score=float(np.mean(credits)), reason=reason)


def summarize(tags: Sequence[str], correct: Sequence[bool]) -> dict[str, Any]:
    """GenEval's summary: accuracy per tag over images, ``overall`` = unweighted mean of the tags seen.

    >>> summarize(["counting", "counting", "colors"], [True, False, True])
    {'overall': 0.75, 'tags': {'colors': 1.0, 'counting': 0.5}}
    """
    if len(tags) != len(correct):
        raise ValueError(f"tags ({len(tags)}) and correct ({len(correct)}) must have the same length")
    per_tag: dict[str, list[bool]] = {}
    for tag, ok in zip(tags, correct):
        per_tag.setdefault(tag, []).append(bool(ok))
    acc = {tag: float(np.mean(v)) for tag, v in sorted(per_tag.items())}
    return {"overall": float(np.mean(list(acc.values()))) if acc else 0.0, "tags": acc}
