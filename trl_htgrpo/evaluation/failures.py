"""Why images fail GenEval: the kind of each image's first failing clause, per tag, and what the detector saw.

The kinds are :data:`~trl_htgrpo.rewards.FAILURES`, in the order GenEval's rules test a clause: ``missing`` (fewer
kept detections of a class than the prompt asks for), ``color`` (the objects are there, one has the wrong colour),
``position`` (the objects are there, the relation is wrong) and ``extra`` (an exclude clause's class is present too
often: one object too many when counting). A ``missing`` image is split further by what its first short class
looks like (:data:`MISSING`). ``benchmarks/failure_modes.py`` prints the table for a saved model;
:func:`~trl_htgrpo.evaluation.evaluate_trainer` returns it with ``failures=True`` (the benchmark's curves).

Does a model that draws both objects follow the relation word, or the colour binding, at all? :func:`swapped_record`
asks the opposite question of the same image: the opposite relation ("left of" -> "right of"), or the colours of
the include clauses exchanged. The swap leaves the classes and counts as they are, so the same images have every
object. A model that ignores the word is right as often under the swapped record as under its own
(``given_objects_swapped`` = ``given_objects_asked``); one that follows it, more often under its own.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from PIL import Image

from ..rewards import FAILURES, Detection, Verdict
from ..rewards.geneval_rules import OPPOSITE, TAGS, keep_detections, swapped_record, threshold_for

__all__ = ["KINDS", "MISSING", "OPPOSITE", "swapped_record", "swapped_verdicts", "missing_kind", "failure_table",
           "format_failure_table"]

KINDS = ("correct", *FAILURES)
#: what a ``missing`` clause's class looks like in the image: not detected at all (another class drawn, or nothing),
#: detected only at or below the threshold (drawn too badly to keep), or kept fewer times than the count asks
MISSING = ("absent", "malformed", "too_few")


def swapped_verdicts(reward, images: Sequence[Image.Image], metas: Sequence[Mapping[str, Any]],
                     detections: Sequence[Sequence[Detection]]) -> list[Verdict | None]:
    """``reward``'s (a :class:`~trl_htgrpo.rewards.GenEvalReward`) verdict of each image against its
    :func:`swapped_record` (None where the record asks neither a relation nor a binding), from the same detections."""
    swapped = [swapped_record(m) for m in metas]
    idx = [i for i, m in enumerate(swapped) if m is not None]
    got = reward.verdicts([images[i] for i in idx], [swapped[i] for i in idx], [detections[i] for i in idx])
    out: list[Verdict | None] = [None] * len(metas)
    for i, v in zip(idx, got):
        out[i] = v
    return out


def missing_kind(metadata: Mapping[str, Any], detections: Sequence[Detection], threshold: float) -> str:
    """Which of :data:`MISSING` the first include clause with too few kept detections of its class is."""
    kept = keep_detections(detections, threshold)  # class -> the detections GenEval keeps
    for clause in metadata["include"]:
        cls, count = clause["class"], int(clause["count"])
        if len(kept.get(cls, [])) >= count:
            continue
        mine = [d for d in detections if d.cls == cls]
        if not mine:
            return "absent"
        return "malformed" if any(d.score <= threshold for d in mine) else "too_few"
    raise ValueError(f"no include clause of {metadata['include']} lacks detections: the image is not 'missing'")


def failure_table(metas: Sequence[Mapping[str, Any]], verdicts: Sequence[Verdict],
                  detections: Sequence[Sequence[Detection]], threshold: float,
                  counting_threshold: float,
                  swapped: Sequence[Verdict | None] | None = None) -> dict[str, dict[str, float]]:
    """tag (and ``all``, every image) -> the fraction of its images in each of :data:`KINDS`, ``missing`` split by
    :data:`MISSING` (``missing_absent`` ...); ``given_objects``, the fraction correct among the images that are not
    ``missing`` (every object there: does the colour binding, the relation or the count then hold?); ``detections``
    (mean detections per image) and ``dropped`` (the fraction of them the rules drop: score at or below the
    threshold, ``counting_threshold`` for counting prompts, as GenEval keeps them).

    ``swapped``: each image's verdict against its :func:`swapped_record` (:func:`swapped_verdicts`); then rows
    with such images also have ``given_objects_swapped``, the fraction of their images with every object that are
    correct under the swapped record, ``given_objects_asked``, the same images' fraction under their own record
    (below ``given_objects``' images where some records have no swap), and ``drawn_swappable``, how many images."""
    if not len(metas) == len(verdicts) == len(detections):
        raise ValueError(f"got {len(metas)} records, {len(verdicts)} verdicts and {len(detections)} detection lists")
    if swapped is not None and len(swapped) != len(metas):
        raise ValueError(f"got {len(swapped)} swapped verdicts for {len(metas)} records")
    thresholds = [threshold_for(m, threshold, counting_threshold) for m in metas]
    kinds = ["correct" if v.correct else v.failure for v in verdicts]
    swappable = [k != "missing" and swapped is not None and swapped[i] is not None for i, k in enumerate(kinds)]
    missing = [missing_kind(m, d, t) if k == "missing" else None
               for m, d, t, k in zip(metas, detections, thresholds, kinds)]
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(metas):
        groups.setdefault(m["tag"], []).append(i)
    order = [t for t in TAGS if t in groups] + sorted(t for t in groups if t not in TAGS)
    out = {}
    for name, idx in [(t, groups[t]) for t in order] + [("all", list(range(len(metas))))]:
        mine = [kinds[i] for i in idx]
        row = {k: mine.count(k) / len(idx) for k in KINDS}
        row |= {f"missing_{k}": sum(missing[i] == k for i in idx) / len(idx) for k in MISSING}
        drawn = len(idx) - mine.count("missing")  # images with every object the prompt asks for
        row["given_objects"] = mine.count("correct") / drawn if drawn else 0.0
        asked = [i for i in idx if swappable[i]]  # every object there, and a swapped verdict
        if asked:  # the same images under their own and under the swapped record
            row["given_objects_asked"] = sum(kinds[i] == "correct" for i in asked) / len(asked)
            row["given_objects_swapped"] = sum(swapped[i].correct for i in asked) / len(asked)
            row["drawn_swappable"] = float(len(asked))
        dets = [(d, thresholds[i]) for i in idx for d in detections[i]]
        row["detections"] = len(dets) / len(idx)
        row["dropped"] = sum(d.score <= t for d, t in dets) / len(dets) if dets else 0.0
        out[name] = row
    return out


def format_failure_table(table: dict[str, dict[str, float]]) -> str:
    """:func:`failure_table` as text: one row per tag, one column per figure."""
    cols = (*KINDS, *(f"missing_{k}" for k in MISSING), "given_objects", "detections", "dropped")
    if any("given_objects_swapped" in row for row in table.values()):
        cols += ("given_objects_swapped",)
    lines = [f"{'tag':14s} " + " ".join(f"{c:>17s}" for c in cols)]
    lines += [f"{t:14s} " + " ".join(f"{row.get(c, float('nan')):17.2f}" for c in cols) for t, row in table.items()]
    return "\n".join(lines)
