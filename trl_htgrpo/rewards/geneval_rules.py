"""GenEval's rule engine, independent of any detector.

Strict correctness follows ``djghosh13/geneval: evaluation/evaluate_images.py`` exactly:

* per class, detections most confident first (GenEval's ``np.argsort(scores)[::-1]``: among exactly
  equal scores the *last* comes first, see :func:`geneval_order`), keep those with
  ``score > threshold`` (``counting_threshold`` for prompts tagged ``counting``), at most
  ``max_objects`` (16);
* an include clause ``{class, count, color?, position?}`` takes the ``count`` most confident
  detections of its class and fails if there are fewer; with a colour it fails unless at least
  ``count`` of them have that colour; with ``position = [relation, j]`` it fails if clause ``j``
  failed or if any of its objects against any object of clause ``j`` lacks the relation;
* an exclude clause ``{class, count}`` fails if at least ``count`` detections of the class exist.

Relation of box A to box B (pixel boxes ``x0, y0, x1, y1``): centres ``c`` and sizes ``d``,
``offset = c_A - c_B``, ``revised = max(|offset| - 0.1 (d_A + d_B), 0) * sign(offset)``; no
relation if all ``|revised| < 1e-3``, else ``(dx, dy) = revised / ||offset||`` and "left of" if
``dx < -0.5``, "right of" if ``dx > 0.5``, "above" if ``dy < -0.5``, "below" if ``dy > 0.5``.

Colour: a detection's colour is ``colors[i]`` when :func:`evaluate` is given one (a photograph
detector classifies only the detections :func:`colors_needed` names, as GenEval classifies only the
objects of clauses that ask for a colour), else its own ``Detection.color``.

Partial credit (:data:`PARTIAL_CREDIT`, the dense reward RL trains on), one of:

``"bounded"`` (ours, the default): every clause earns a credit in [0, 1] and the score is their mean.
    An include clause earns ``found / count`` (``found``: its ``count`` most confident kept
    detections, so capped at ``count``), times the fraction of those with the right colour when a
    colour is asked, and 0 when its position fails (or its target clause failed); an exclude clause
    earns 1 or 0. Score 1 exactly when strictly correct.
``"flow_grpo"``: Flow-GRPO's training score (``yifan123/reward-server: reward_server/gen_eval.py``,
    ``evaluate_reward``), same thresholds. A list of terms, the score is their mean. Per include
    clause, with ``n`` = *all* kept detections of its class (up to 16):
    ``1 - |count - n| / count`` (negative when ``n > 2 count``); if ``n != count`` one more term 0
    when the clause asks for a colour or a position (one 0 for both), and the clause fails;
    else a colour term ``1 - |count - right| / count`` (the clause fails unless ``right == count``),
    then, only if it has not failed, a position term: 0 if the target clause failed, else 0 when
    some pair lacks the relation and then, in every case, a 1 (the server appends 1.0 after its pair
    loop, so a wrong position adds the two terms 0 and 1). Excludes are ignored.
``"contrastive"`` (ours): ``"bounded"`` plus how much more the image earns under its own record than under the
    record asking the opposite relation or the exchanged colours (:func:`swapped_record`); rewards following the
    relation word and the binding, not a habit (:func:`contrastive_credit`). Range [-1, 2].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
#: GenEval's colour vocabulary (``COLORS`` in evaluate_images.py); a detector may know only some of them.
GENEVAL_COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)
#: GenEval's 80 object names (``evaluation/object_names.txt``), in its detector's COCO class order.
GENEVAL_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
POSITION_THRESHOLD = 0.1
MAX_OBJECTS = 16


@dataclass(frozen=True)
class Detection:
    """One detected object: its class, colour (None if not known yet), pixel box and confidence.

    ``mask``: the object's (H, W) bool pixel mask at the image's size, for a detector that classifies
    colour from it later (``classify_colors``); None otherwise. Not part of equality or the repr.
    """

    cls: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    color: str | None = None
    mask: Any = field(default=None, compare=False, repr=False)  # (H, W) bool numpy array or None


@dataclass(frozen=True)
class Verdict:
    """Outcome of one image against one prompt's metadata."""

    correct: bool  # GenEval's strict correctness
    score: float  # partial credit: "bounded" in [0, 1], "flow_grpo" <= 1 and possibly negative
    reason: str  # first failing clause, "" when correct
    failure: str = ""  # kind of the first failing clause (one of FAILURES), "" when correct


#: kinds of the first failing clause (:attr:`Verdict.failure`), in the order the rules test them:
#: fewer kept detections of an include clause's class than its count; right count, a wrong colour; right
#: objects, a wrong relation (or its target clause failed); an exclude clause's class present too often.
FAILURES: tuple[str, ...] = ("missing", "color", "position", "extra")


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


def geneval_order(scores: Sequence[float]) -> list[int]:
    """Indices of ``scores``, most confident first; among exactly equal scores the last comes first.

    This is GenEval's ``np.argsort(scores)[::-1]`` wherever numpy's argsort keeps equal elements in
    order: GenEval's pinned numpy 1.23 does for up to 16 elements (insertion sort) and not beyond;
    numpy 2 on AVX-512 CPUs does not even for 10 (a SIMD sort), so GenEval's own tie order depends on
    the machine. We pin the documented one (checked against numpy 1.23.5 and 2.4.6).

    >>> geneval_order([0.5, 0.9, 0.5, 0.7, 0.5])
    [1, 3, 4, 2, 0]
    """
    return sorted(range(len(scores)), key=lambda i: (-scores[i], -i))


def keep_detections(detections: Sequence[Detection], threshold: float,
                    max_objects: int = MAX_OBJECTS) -> dict[str, list[int]]:
    """class -> indices into ``detections`` that GenEval keeps: ``score > threshold``, most confident first, at most ``max_objects``."""
    by_class: dict[str, list[int]] = {}
    for i, det in enumerate(detections):
        by_class.setdefault(det.cls, []).append(i)
    kept = {}
    for cls, idx in by_class.items():
        ordered = [idx[k] for k in geneval_order([detections[i].score for i in idx])]
        kept[cls] = [i for i in ordered if detections[i].score > threshold][:max_objects]
    return kept


def threshold_for(metadata: Mapping[str, Any], threshold: float, counting_threshold: float) -> float:
    """The score a detection must exceed to be kept for this prompt: ``counting_threshold`` for prompts tagged
    ``counting``, ``threshold`` for the others (GenEval's 0.9 / 0.3)."""
    return counting_threshold if metadata.get("tag") == "counting" else threshold


def colors_needed(detections: Sequence[Detection], metadata: Mapping[str, Any], threshold: float = 0.3,
                  counting_threshold: float = 0.9, max_objects: int = MAX_OBJECTS) -> list[int]:
    """Indices of the detections whose colour some rule may read: for every include clause with a
    colour, the ``count`` most confident kept detections of its class (fewer if fewer are kept).

    GenEval classifies exactly these when there are ``count`` of them; "bounded" also reads them when
    there are fewer, "flow_grpo" only when all kept ones are exactly ``count``. Sorted, no repeats.
    """
    kept = keep_detections(detections, threshold_for(metadata, threshold, counting_threshold), max_objects)
    need: set[int] = set()
    for clause in metadata["include"]:
        if clause.get("color") is not None:
            need.update(kept.get(clause["class"], [])[: int(clause["count"])])
    return sorted(need)


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


@dataclass(frozen=True)
class _Image:
    """One image's kept detections, as the scoring rules read them."""

    kept: dict[str, list[int]]  # class -> indices, most confident first
    boxes: Sequence[tuple[float, float, float, float]]  # box of each detection
    colors: Sequence[str | None]  # colour of each detection (None: unknown)
    metadata: Mapping[str, Any]

    def holds(self, rel: str, objects: Sequence[int], targets: Sequence[int]) -> bool:
        """Every object has the relation to every target."""
        return all(rel in relation(self.boxes[a], self.boxes[b]) for a in objects for b in targets)


def _target(groups: Sequence[list[int] | None], j: int) -> list[int] | None:
    return groups[j] if j < len(groups) else None  # a forward reference (invalid metadata) has no target


def _strict(im: _Image) -> tuple[bool, tuple[str, str], list[list[int] | None]]:
    """GenEval's ``evaluate``: correctness, the first failing clause (its kind and reason), each include clause's
    objects (None: failed)."""
    reasons: list[tuple[str, str]] = []  # (kind in FAILURES, GenEval's reason text)
    groups: list[list[int] | None] = []
    for clause in im.metadata["include"]:
        cls, count = clause["class"], int(clause["count"])
        found = im.kept.get(cls, [])[:count]
        ok = len(found) >= count
        if not ok:
            reasons.append(("missing", f"expected {count} {cls}, found {len(found)}"))
        else:
            color = clause.get("color")
            if color is not None:
                colors = [im.colors[i] for i in found]
                if colors.count(color) < count:
                    ok = False
                    reasons.append(("color", f"expected {color} {cls}, found {colors}"))
            position = clause.get("position")
            if position is not None and ok:
                rel, j = position[0], int(position[1])
                targets = _target(groups, j)
                if targets is None:
                    ok = False
                    reasons.append(("position", f"no {rel} target (clause {j} failed)"))
                elif not im.holds(rel, found, targets):
                    ok = False
                    reasons.append(("position", f"expected {cls} {rel} target"))
        groups.append(found if ok else None)
    for clause in im.metadata.get("exclude") or []:
        cls, count = clause["class"], int(clause["count"])
        if len(im.kept.get(cls, [])) >= count:
            reasons.append(("extra", f"expected fewer than {count} {cls}"))
    return not reasons, reasons[0] if reasons else ("", ""), groups


#: each GenEval relation and the one that holds when the two objects change places
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def swapped_record(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record asking the opposite of ``metadata``'s relation or colour binding; None when it asks neither.

    A clause with a ``position`` gets :data:`OPPOSITE` relation; include clauses with colours (at least two, not
    all one colour) get them rotated by one (two clauses: exchanged). Classes and counts stay.

    >>> swapped_record({"tag": "color_attr", "include": [{"class": "square", "count": 1, "color": "red"},
    ...                 {"class": "circle", "count": 1, "color": "blue"}]})["include"]
    [{'class': 'square', 'count': 1, 'color': 'blue'}, {'class': 'circle', 'count': 1, 'color': 'red'}]
    """
    include = [dict(c) for c in metadata["include"]]
    positioned = [c for c in include if c.get("position") is not None]
    for c in positioned:
        rel, j = c["position"]
        c["position"] = [OPPOSITE[rel], j]
    coloured = [c for c in include if c.get("color") is not None]
    colours = [c["color"] for c in coloured]
    rotate = len(coloured) >= 2 and len(set(colours)) > 1
    if rotate:
        for c, color in zip(coloured, colours[-1:] + colours[:-1]):
            c["color"] = color
    if not positioned and not rotate:
        return None
    return {**metadata, "include": include, "prompt": f"(swapped) {metadata.get('prompt', '')}"}


def bounded_credit(im: _Image, groups: Sequence[list[int] | None]) -> float:
    """Ours: the mean of per-clause credits in [0, 1] (module docstring); ``groups`` from the strict rules."""
    credits = []
    for clause in im.metadata["include"]:
        cls, count = clause["class"], int(clause["count"])
        found = im.kept.get(cls, [])[:count]
        credit = len(found) / count
        color = clause.get("color")
        if color is not None:
            credit *= sum(im.colors[i] == color for i in found) / max(len(found), 1)
        position = clause.get("position")
        if position is not None:
            targets = _target(groups, int(position[1]))
            if targets is None or not found or not im.holds(position[0], found, targets):
                credit = 0.0
        credits.append(credit)
    for clause in im.metadata.get("exclude") or []:
        credits.append(float(len(im.kept.get(clause["class"], [])) < int(clause["count"])))
    return float(np.mean(credits))


def flow_grpo_score(im: _Image, groups: Sequence[list[int] | None]) -> float:
    """Flow-GRPO's ``evaluate_reward`` (module docstring); it tracks its own clause outcomes, not ``groups``."""
    terms: list[float] = []
    matched: list[list[int] | None] = []
    for clause in im.metadata["include"]:
        cls, count = clause["class"], int(clause["count"])
        found = im.kept.get(cls, [])  # every kept detection of the class, not only the `count` best
        terms.append(1 - abs(count - len(found)) / count)
        ok = len(found) == count
        color, position = clause.get("color"), clause.get("position")
        if not ok:
            if color is not None or position is not None:
                terms.append(0.0)
        else:
            if color is not None:
                right = sum(im.colors[i] == color for i in found)
                terms.append(1 - abs(count - right) / count)
                ok = right == count
            if position is not None and ok:
                targets = _target(matched, int(position[1]))
                if targets is None:
                    ok = False
                    terms.append(0.0)
                else:
                    if not im.holds(position[0], found, targets):
                        ok = False
                        terms.append(0.0)
                    terms.append(1.0)  # the server appends 1.0 after its pair loop, failed or not
        matched.append(found if ok else None)
    return sum(terms) / len(terms) if terms else 0.0


def contrastive_credit(im: _Image, groups: Sequence[list[int] | None]) -> float:
    """``"contrastive"``: the bounded credit, plus how much more the image earns under its own record than under
    its :func:`swapped_record` (the opposite relation, or the colours exchanged):

        score = b(asked) + (b(asked) - b(swapped)),    b = :func:`bounded_credit`

    Records asking neither a relation nor a binding score ``b(asked)``. A layout or colour habit that ignores the
    word earns as much under the swapped record as under its own, so the term rewards only following the word:
    for "a circle left of a square" with both drawn, circle left 1 + 0.5 = 1.5, right 0.5 - 0.5 = 0, neither (e.g.
    one above the other) 0.5; with only one drawn 0.5. Range [-1, 2].
    """
    asked = bounded_credit(im, groups)
    swapped = swapped_record(im.metadata)
    if swapped is None:
        return asked
    other = replace(im, metadata=swapped)  # same tag, so the same kept detections; same clauses asking a colour
    return asked + (asked - bounded_credit(other, _strict(other)[2]))


#: partial-credit rule name -> score(image, strict include groups)
PARTIAL_CREDIT: dict[str, Callable[[_Image, Sequence[list[int] | None]], float]] = {
    "bounded": bounded_credit,
    "flow_grpo": flow_grpo_score,
    "contrastive": contrastive_credit,
}


def check_partial_credit(name: str) -> None:
    """Raise ``ValueError`` listing the rules when ``name`` is not one of :data:`PARTIAL_CREDIT`."""
    if name not in PARTIAL_CREDIT:
        raise ValueError(
            f"partial_credit={name!r} is not a known rule; choose one of {sorted(PARTIAL_CREDIT)}: 'bounded' "
            "(ours: clause credits in [0, 1], 1 exactly when GenEval says correct), 'flow_grpo' (Flow-GRPO's "
            "reward-server score: counts against all kept detections, can be negative, ignores excludes) or "
            "'contrastive' (ours: bounded, plus its margin over the swapped relation or colours; in [-1, 2])"
        )


def evaluate(
    detections: Sequence[Detection],
    metadata: Mapping[str, Any],
    threshold: float = 0.3,
    counting_threshold: float = 0.9,
    max_objects: int = MAX_OBJECTS,
    partial_credit: str = "bounded",
    colors: Sequence[str | None] | None = None,
) -> Verdict:
    """Apply GenEval's rules to one image's detections.

    ``colors``: the colour of each detection (same order; e.g. from a detector's ``classify_colors``
    for the indices :func:`colors_needed` names); None: each detection's own ``color``.

    >>> d = [Detection("square", (0, 0, 12, 12), 1.0, "red"), Detection("circle", (24, 0, 36, 12), 1.0, "blue")]
    >>> meta = {"tag": "position", "include": [{"class": "circle", "count": 1},
    ...         {"class": "square", "count": 1, "position": ["left of", 0]}]}
    >>> evaluate(d, meta).correct
    True
    """
    check_partial_credit(partial_credit)
    if colors is not None and len(colors) != len(detections):
        raise ValueError(f"got {len(colors)} colours for {len(detections)} detections")
    im = _Image(
        kept=keep_detections(detections, threshold_for(metadata, threshold, counting_threshold), max_objects),
        boxes=[d.box for d in detections],
        colors=[d.color for d in detections] if colors is None else list(colors),
        metadata=metadata,
    )
    correct, (failure, reason), groups = _strict(im)
    return Verdict(correct=correct, score=PARTIAL_CREDIT[partial_credit](im, groups), reason=reason, failure=failure)


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
