"""Why images fail GenEval: the kind of each image's first failing clause, per tag, for a model on a prompt split.

The kinds are :data:`~trl_htgrpo.rewards.FAILURES`, in the order GenEval's rules test a clause: ``missing`` (fewer
kept detections of a class than the prompt asks for), ``color`` (the objects are there, one has the wrong colour),
``position`` (the objects are there, the relation is wrong) and ``extra`` (an exclude clause's class is present too
often: one object too many when counting). A ``missing`` image is split further by what its first short class
looks like: ``absent`` (not detected at all: another shape drawn, or none), ``malformed`` (detected only at or below
the threshold: drawn too badly to keep) or ``too_few``. Then the fraction correct among the images that have every
object (``given_objects``: for color_attr the colour binding's accuracy, for position the relation's), and what the
detector saw: detections per image and the fraction the rules drop (for the shapes detector a component whose best
template IoU is at most 0.6, 0.9 for counting: a shape drawn wrong, or a stray tile). Run it on the base model and
on a trained checkpoint to see which failures training removes and which it leaves; images are drawn with the
recipe's sampler (guidance 2, T = 12) and the evaluation's image seeds (2 per prompt on the held-out split: the main
job's own evaluation images).

    python benchmarks/failure_modes.py [--model outputs/htgrpo-shapes] [--split validation] [--images_per_prompt 4]
        [--max_prompts N] [--output failures.json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Mapping, Sequence

from trl_htgrpo.machine import describe_machine
from trl_htgrpo.rewards import FAILURES, Detection, Verdict
from trl_htgrpo.rewards.geneval_rules import TAGS, keep_detections, threshold_for
from trl_htgrpo.toy.split_images import sample_split

KINDS = ("correct", *FAILURES)
#: what a ``missing`` clause's class looks like in the image: not detected at all (another class drawn, or nothing),
#: detected only at or below the threshold (drawn too badly to keep), or kept fewer times than the count asks
MISSING = ("absent", "malformed", "too_few")


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
                  counting_threshold: float) -> dict[str, dict[str, float]]:
    """tag (and ``all``, every image) -> the fraction of its images in each of :data:`KINDS`, ``missing`` split by
    :data:`MISSING` (``missing_absent`` ...); ``given_objects``, the fraction correct among the images that are not
    ``missing`` (every object there: does the colour binding, the relation or the count then hold?); ``detections``
    (mean detections per image) and ``dropped`` (the fraction of them the rules drop: score at or below the
    threshold, ``counting_threshold`` for counting prompts, as GenEval keeps them)."""
    if not len(metas) == len(verdicts) == len(detections):
        raise ValueError(f"got {len(metas)} records, {len(verdicts)} verdicts and {len(detections)} detection lists")
    thresholds = [threshold_for(m, threshold, counting_threshold) for m in metas]
    kinds = ["correct" if v.correct else v.failure for v in verdicts]
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
        dets = [(d, thresholds[i]) for i in idx for d in detections[i]]
        row["detections"] = len(dets) / len(idx)
        row["dropped"] = sum(d.score <= t for d, t in dets) / len(dets) if dets else 0.0
        out[name] = row
    return out


def format_table(table: dict[str, dict[str, float]]) -> str:
    cols = (*KINDS, *(f"missing_{k}" for k in MISSING), "given_objects", "detections", "dropped")
    lines = [f"{'tag':14s} " + " ".join(f"{c:>17s}" for c in cols)]
    lines += [f"{t:14s} " + " ".join(f"{row[c]:17.2f}" for c in cols) for t, row in table.items()]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a folder saved by save_pretrained (a training run's output_dir); "
                   "default: the bundled base model")
    p.add_argument("--split", default="validation")
    p.add_argument("--images_per_prompt", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_prompts", type=int, default=None, help="only the split's first N prompts (a quick look)")
    p.add_argument("--output", default=None, help="write the table as JSON here")
    a = p.parse_args(argv)
    drawn = sample_split(a.model, a.split, a.images_per_prompt, a.seed, a.max_prompts, desc=a.model or "base model")
    metas, images, reward = drawn.metas, drawn.images, drawn.reward
    detections = reward.detect(images)  # every detection, kept or not: the verdicts and the table read them
    verdicts = reward.verdicts(images, metas, detections)
    table = failure_table(metas, verdicts, detections, reward.threshold, reward.counting_threshold)
    print(format_table(table))
    if a.output:
        with open(a.output, "w") as f:
            json.dump({"model": a.model or "shapes-mdm", "split": a.split, "images_per_prompt": a.images_per_prompt,
                       "seed": a.seed, "threshold": reward.threshold, "counting_threshold": reward.counting_threshold,
                       "tags": table, "machine": describe_machine()},
                      f, indent=1)
    return table


if __name__ == "__main__":
    main()
