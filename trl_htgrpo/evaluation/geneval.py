"""GenEval (``djghosh13/geneval``): sample a metadata file into GenEval's folder layout, score it in process, and
summarise it as GenEval's ``evaluation/summary_scores.py`` does.

Layout (README "Image generation"; ``generation/diffusers_generate.py`` lines 115-146), for metadata line ``i``
(0-based) and image ``k``::

    D/<i:05d>/metadata.jsonl        json.dump of line i's record (one object, no newline)
    D/<i:05d>/samples/<k:04d>.png

``evaluation/evaluate_images.py`` (``main``, lines 261-275) reads every subfolder whose name ``isdigit()``, its
``metadata.jsonl`` with ``json.load``, and every file of ``samples/`` matching ``\\d+\\.png``, so it scores ``D``
unchanged; the other files written here (``manifest.json``, ``results.json``, ``results.jsonl``, ``samples.png``)
are skipped by it. (The README names samples ``0000.png``; ``diffusers_generate.py`` writes ``00000.png``; both
match; we follow the README.)

In-process scoring: the images are read back from ``D`` and judged by GenEval's rules
(:mod:`trl_htgrpo.rewards.geneval_rules`) over the backbone's detector (``"mask2former"`` for photographs). Each
image gives a row in ``evaluate_images.py``'s format (``filename, tag, prompt, correct, reason, metadata``, lines
247-258; ``details``, the kept boxes, is not written; ``reason`` is the first failing clause, GenEval's lists
all), written to ``D/results.jsonl``, which ``summary_scores.py`` reads.

Summary (``evaluation/summary_scores.py`` lines 22-45): correct images = mean of ``correct`` over all images;
correct prompts = mean over prompts of "any image correct" (GenEval groups rows by the ``metadata`` string; the
553 official lines are all distinct, so a group is a prompt); per tag, the mean of ``correct`` over that tag's
images (tags in order of first appearance, ``groupby(sort=False)``); overall = the unweighted mean of the tag
accuracies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from ..rewards import GenEvalReward
from ..rewards.geneval_rules import validate_metadata
from .outputs import OutputFolderError, prepare_output_dir, remove_partial, save_png
from .sampling import draw_images, image_seed

REQUIRED_FIELDS = ("tag", "prompt", "include")


def read_metadata(path: str) -> list[dict[str, Any]]:
    """GenEval metadata (one JSON object per line: tag, include, exclude?, prompt) -> records; a malformed line
    raises ``ValueError`` naming the file, the line number and the field."""
    records = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON object, got {type(record).__name__}")
                for key in REQUIRED_FIELDS:
                    if key not in record:
                        raise ValueError(f"field {key!r} is missing")
                validate_metadata(record)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}, line {n}: {e}") from e
            records.append(record)
    return records


# ---------------------------------------------------------------------------------------------- layout
def prompt_dir(root: str | os.PathLike, index: int) -> Path:
    """``D/<index:05d>``: the folder of metadata record ``index``."""
    return Path(root) / f"{index:05d}"


def sample_path(root: str | os.PathLike, index: int, k: int) -> Path:
    """``D/<index:05d>/samples/<k:04d>.png``."""
    return prompt_dir(root, index) / "samples" / f"{k:04d}.png"


def geneval_artefacts(root: Path) -> list[Path]:
    """What a GenEval run writes in ``root`` (deleted by ``--overwrite``): the numbered folders GenEval's scorer
    reads and our results."""
    if not root.exists():
        return []
    own = [root / n for n in ("results.json", "results.jsonl", "samples.png", "metrics.jsonl")]
    return [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()] + [p for p in own if p.exists()]


def missing_samples(root: str | os.PathLike, records: Sequence[Mapping[str, Any]], images_per_prompt: int
                    ) -> list[tuple[int, int]]:
    """(record index, image index) of every image not yet in ``root``; writes each record's ``metadata.jsonl`` if
    absent, and refuses a folder whose ``metadata.jsonl`` holds another record (a different metadata file)."""
    missing = []
    for i, record in enumerate(records):
        folder = prompt_dir(root, i)
        meta = folder / "metadata.jsonl"
        if meta.exists():
            with open(meta) as fh:
                there = json.load(fh)
            if there != record:
                raise OutputFolderError(
                    f"{folder} holds the prompt {there.get('prompt')!r}, but record {i} of the metadata is "
                    f"{record.get('prompt')!r}: another metadata file was sampled here. Pass --overwrite or choose "
                    "another --output_dir")
        else:
            (folder / "samples").mkdir(parents=True, exist_ok=True)
            with open(meta, "w") as fh:
                json.dump(record, fh)  # as diffusers_generate.py: one object, no newline
        remove_partial(folder / "samples")
        missing += [(i, k) for k in range(images_per_prompt) if not sample_path(root, i, k).exists()]
    return missing


def write_samples(model, backbone, records: Sequence[Mapping[str, Any]], root: str | os.PathLike,
                  images_per_prompt: int = 4, seed: int = 0, batch_size: int = 16, desc: str | None = "GenEval",
                  **settings: Any) -> int:
    """Draw every image of ``records`` missing from ``root`` into GenEval's layout; returns how many were written.

    Image ``k`` of record ``i`` is drawn with ``image_seed(seed, i * images_per_prompt + k)`` (as
    :func:`~trl_htgrpo.evaluation.evaluate_model`), so the images do not depend on ``batch_size`` or on which
    images a resumed run still had to draw. A progress bar over the prompts shows the time left."""
    from tqdm.auto import tqdm

    jobs = missing_samples(root, records, images_per_prompt)
    todo: dict[int, int] = {}
    for i, _ in jobs:
        todo[i] = todo.get(i, 0) + 1
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=desc, unit="prompt", disable=desc is None)
    prompts = [records[i]["prompt"] for i, _ in jobs]
    seeds = [image_seed(seed, i * images_per_prompt + k) for i, k in jobs]
    for start, images in draw_images(model, backbone, prompts, seeds, batch_size, **settings):
        for (i, k), image in zip(jobs[start:start + len(images)], images):
            save_png(image, sample_path(root, i, k))
            todo[i] -= 1
            bar.update(int(todo[i] == 0))
    bar.close()
    return len(jobs)


# ---------------------------------------------------------------------------------------------- scoring
def score_samples(root: str | os.PathLike, records: Sequence[Mapping[str, Any]], reward: GenEvalReward,
                  images_per_prompt: int = 4, batch_size: int = 32, desc: str | None = "GenEval scoring"
                  ) -> list[dict[str, Any]]:
    """GenEval's per-image rows (``evaluate_images.py`` format, see the module docstring) of the images of
    ``records`` in ``root``, read back from disk, judged ``batch_size`` images at a time."""
    from tqdm.auto import tqdm

    items = [(i, k) for i in range(len(records)) for k in range(images_per_prompt)]
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(records), desc=desc, unit="prompt", disable=desc is None)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        paths = [sample_path(root, i, k) for i, k in chunk]
        images = []
        for p in paths:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        metas = [records[i] for i, _ in chunk]
        for (i, k), path, meta, v in zip(chunk, paths, metas, reward.verdicts(images, metas)):
            rows.append({"filename": str(path), "tag": meta["tag"], "prompt": meta["prompt"], "correct": bool(v.correct),
                         "reason": v.reason, "metadata": json.dumps(meta)})
            bar.update(int(k == images_per_prompt - 1))
    bar.close()
    return rows


def geneval_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GenEval's summary of per-image rows (``tag``, ``correct``, ``metadata``), as ``summary_scores.py``.

    >>> rows = [{"tag": "counting", "correct": c, "metadata": m} for c, m in [(True, "a"), (False, "a"), (False, "b")]]
    >>> rows.append({"tag": "colors", "correct": True, "metadata": "c"})
    >>> s = geneval_summary(rows)
    >>> s["tags"], s["overall"], s["correct_images"], s["correct_prompts"]
    ({'counting': 0.3333333333333333, 'colors': 1.0}, 0.6666666666666666, 0.5, 0.6666666666666666)
    """
    if not rows:
        raise ValueError("no images to summarise")
    by_tag: dict[str, list[bool]] = {}
    by_prompt: dict[str, list[bool]] = {}
    for row in rows:
        by_tag.setdefault(row["tag"], []).append(bool(row["correct"]))
        by_prompt.setdefault(row["metadata"], []).append(bool(row["correct"]))
    tags = {tag: float(np.mean(v)) for tag, v in by_tag.items()}
    return {
        "overall": float(np.mean(list(tags.values()))),
        "tags": tags,
        "tag_counts": {tag: [int(sum(v)), len(v)] for tag, v in by_tag.items()},
        "correct_images": float(np.mean([bool(r["correct"]) for r in rows])),
        "correct_prompts": float(np.mean([any(v) for v in by_prompt.values()])),
        "num_images": len(rows),
        "num_prompts": len(by_prompt),
    }


def format_geneval_summary(summary: Mapping[str, Any]) -> str:
    """The summary as ``summary_scores.py`` prints it."""
    lines = ["Summary", "=======", f"Total images: {summary['num_images']}", f"Total prompts: {summary['num_prompts']}",
             f"% correct images: {summary['correct_images']:.2%}", f"% correct prompts: {summary['correct_prompts']:.2%}",
             "", "Task breakdown", "=============="]
    for tag, acc in summary["tags"].items():
        right, total = summary["tag_counts"][tag]
        lines.append(f"{tag:<16} = {acc:.2%} ({right} / {total})")
    lines += ["", f"Overall score (avg. over tasks): {summary['overall']:.5f}"]
    return "\n".join(lines)


def run_geneval(model, backbone, records: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike, *,
                manifest: Mapping[str, Any], images_per_prompt: int = 4, seed: int = 0, batch_size: int = 16,
                reward: GenEvalReward | None = None, overwrite: bool = False, progress: bool = True,
                **settings: Any) -> dict[str, Any]:
    """Sample ``records`` into ``output_dir`` in GenEval's layout (resuming: images there are kept), score them in
    process and return GenEval's summary plus ``rows`` (per image) and ``samples`` (the first image of up to 48
    prompts spread over the file, as (prompt, PIL image, correct)). ``manifest``: see :mod:`.outputs`.

    The detector loads and the metadata is checked against its classes and colours before any image is drawn."""
    reward = reward or GenEvalReward(strict=True)
    reward.bind_backbone(backbone)
    det = reward.load().detector  # a missing detector fails before an image is drawn
    for i, record in enumerate(records):  # fail before sampling, not after
        try:
            validate_metadata(record, getattr(det, "classes", None), getattr(det, "colors", None))
        except ValueError as e:
            raise ValueError(f"metadata record {i} ({record.get('prompt')!r}): {e}") from e
    root = Path(output_dir)
    resumed = prepare_output_dir(root, manifest, overwrite, geneval_artefacts)
    written = write_samples(model, backbone, records, root, images_per_prompt, seed, batch_size,
                            desc="GenEval sampling" if progress else None, **settings)
    rows = score_samples(root, records, reward, images_per_prompt, desc="GenEval scoring" if progress else None)
    with open(root / "results.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    out = geneval_summary(rows)
    out.update(resumed=resumed, images_written=written)
    shown = sorted({round(j * (len(records) - 1) / 47) for j in range(48)}) if len(records) > 48 else range(len(records))
    samples = []
    for i in shown:
        with Image.open(sample_path(root, i, 0)) as im:
            samples.append((records[i]["prompt"], im.convert("RGB"), rows[i * images_per_prompt]["correct"]))
    out["rows"], out["samples"] = rows, samples
    return out
