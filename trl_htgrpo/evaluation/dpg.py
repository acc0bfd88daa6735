"""DPG-Bench (``TencentQQGYLab/ELLA: dpg_bench/``): sample its prompts into the layout its scorer reads and score
them in process with a VQA model, with its question dependencies and its averaging.

Inputs: ``dpg_bench/prompts/<item_id>.txt`` (one prompt per file) and ``dpg_bench/dpg_bench.csv``, one row per
question with the columns ``item_id, text, keywords, proposition_id, dependency, category_broad,
category_detailed, tuple, question_natural_language`` (``compute_dpg_bench.py`` line 70); ``dependency`` lists the
parent proposition ids, comma separated, ``0`` for none.

Layout (README "DPG-Bench"; ``compute_dpg_one_sample``, lines 109-119): per prompt one PNG named by its id, the
4 images of the prompt in a 2x2 grid, cut back by the scorer with the crop boxes ``(0, 0, r, r)``,
``(r, 0, 2r, r)``, ``(0, r, r, 2r)``, ``(r, r, 2r, 2r)`` (``r`` = ``--resolution``, one image's side; image ``k``
of a prompt sits in box ``k``) and looked up by ``basename.split('.')[0]``. Written to ``D/images/<item_id>.png``
(the scorer reads every file of its folder, so ours stay beside it, in ``D``)::

    bash dpg_bench/dist_eval.sh D/images <r>          # the official scorer (mPLUG-large, PIC_NUM=4)

Scoring (``compute_dpg_one_sample`` lines 129-157 and ``main`` lines 199-249), per prompt and per image (crop):
every question is asked; a question scores 1 if the answer is "yes", else 0; then, in the CSV's question order,
a question scores 0 if any parent (id != 0) scores 0 at that point (parents zeroed earlier in the pass count as
0); the image's score is the mean over the prompt's questions; the prompt's score the mean over its 4 images;
the DPG-Bench score the mean over prompts, times 100. Category scores, as the official code computes them: each
question's answer *before* the dependency pass and on the *last* image only (``qid2scores_orig`` is copied inside
the image loop, line 138, and returned after it), averaged per L2 category (the tuple's text before ``(``, e.g.
``entity - whole``) and per L1 category (before the first ``-``, e.g. ``entity``), times 100.

Two departures, both documented in docs/evaluation.md: answers are compared after ``strip().lower()`` (the official
compares ``answer == 'yes'``; mPLUG answers in lower case), and the CSV's first data row is kept (the official
``prepare_dpg_data`` skips it, line 73, ``if i == 0: continue`` on pandas' 0-based row index: one question of the
first prompt is dropped there, and that prompt is left out entirely when another of its questions depends on it).

The VQA model is not DPG-Bench's mPLUG-large (ModelScope's ``damo/mplug_visual-question-answering_coco_large_en``,
not in transformers): see :mod:`.vqa`. Scores are comparable between checkpoints scored here, not to published
DPG-Bench numbers; for those, run the official scorer on ``D/images``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from .outputs import prepare_output_dir, remove_partial, save_png
from .sampling import draw_images, image_seed

COLUMNS = ("item_id", "proposition_id", "dependency", "tuple", "question_natural_language")
IMAGES_PER_PROMPT = 4  # the 2x2 grid

#: ``vqa(images, questions) -> answers``: for each image, the answer to each of ``questions``
VQA = Callable[[Sequence[Image.Image], Sequence[str]], list[list[str]]]


@dataclass(frozen=True)
class DPGQuestion:
    qid: int  # proposition_id
    question: str  # question_natural_language
    tuple: str  # e.g. "entity - whole (cabbages)"
    parents: tuple[int, ...]  # dependency; 0 = none

    @property
    def category(self) -> str:
        """L2 category, as the official code: the tuple's text before ``(``, stripped (``"entity - whole"``)."""
        return self.tuple.split("(")[0].strip()

    @property
    def l1(self) -> str:
        """L1 category: the L2 category before its first ``-`` (``"entity"``)."""
        return self.category.split("-")[0].strip()


@dataclass(frozen=True)
class DPGItem:
    item_id: str
    prompt: str
    questions: tuple[DPGQuestion, ...]


def read_questions(path: str | os.PathLike) -> dict[str, list[DPGQuestion]]:
    """``dpg_bench.csv`` -> item id -> its questions in the file's order; a malformed row raises ``ValueError``
    naming the file, the line and the field."""
    out: dict[str, list[DPGQuestion]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: columns {missing} are missing (DPG-Bench's dpg_bench.csv has {list(COLUMNS)} "
                             f"among others); found {reader.fieldnames}")
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            item = (row["item_id"] or "").strip()
            if not item:
                raise ValueError(f"{where}: field 'item_id' is empty")
            try:
                qid = int(row["proposition_id"])
            except (TypeError, ValueError):
                raise ValueError(f"{where}: field 'proposition_id' is {row['proposition_id']!r}, not an integer") from None
            try:
                parents = tuple(int(d) for d in (row["dependency"] or "").split(","))
            except ValueError:
                raise ValueError(f"{where}: field 'dependency' is {row['dependency']!r}: give the parent proposition ids, "
                                 "comma separated (0: none)") from None
            for name in ("tuple", "question_natural_language"):
                if not (row[name] or "").strip():
                    raise ValueError(f"{where}: field {name!r} is empty")
            questions = out.setdefault(item, [])
            if any(q.qid == qid for q in questions):
                raise ValueError(f"{where}: item {item!r} has proposition_id {qid} twice")
            questions.append(DPGQuestion(qid, row["question_natural_language"], row["tuple"], parents))
    for item, questions in out.items():
        ids = {q.qid for q in questions}
        for q in questions:
            unknown = [p for p in q.parents if p != 0 and p not in ids]
            if unknown:
                raise ValueError(f"{path}: item {item!r}, proposition {q.qid} depends on {unknown}, which the item "
                                 "does not have")
    return out


def read_dpg(prompts_dir: str | os.PathLike, questions_csv: str | os.PathLike) -> list[DPGItem]:
    """DPG-Bench's prompts folder and question file -> items in the file's order of item ids. Every item of the
    file needs a prompt file and every prompt file questions."""
    folder = Path(prompts_dir)
    if not folder.is_dir():
        raise ValueError(f"--prompts {folder}: not a folder (DPG-Bench's dpg_bench/prompts/ holds <item_id>.txt)")
    prompts = {p.name.split(".")[0]: p for p in sorted(folder.glob("*.txt"))}
    questions = read_questions(questions_csv)
    no_prompt = [i for i in questions if i not in prompts]
    if no_prompt:
        raise ValueError(f"{questions_csv}: items {no_prompt[:5]} have no prompt file <item_id>.txt in {folder}")
    no_questions = [i for i in prompts if i not in questions]
    if no_questions:
        raise ValueError(f"{folder}: prompts {no_questions[:5]} have no questions in {questions_csv}")
    items = []
    for item_id, qs in questions.items():
        text = prompts[item_id].read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"{prompts[item_id]}: the prompt is empty")
        items.append(DPGItem(item_id, text, tuple(qs)))
    return items


# ---------------------------------------------------------------------------------------------- the 2x2 grid
def crop_boxes(r: int) -> list[tuple[int, int, int, int]]:
    """The official crop boxes of the 4 images in a grid of side ``2 r`` (``compute_dpg_one_sample``)."""
    return [(0, 0, r, r), (r, 0, 2 * r, r), (0, r, r, 2 * r), (r, r, 2 * r, 2 * r)]


def make_grid(images: Sequence[Image.Image]) -> Image.Image:
    """4 square images of side ``r`` -> the ``2r x 2r`` grid, image ``k`` in crop box ``k``."""
    if len(images) != IMAGES_PER_PROMPT:
        raise ValueError(f"a DPG-Bench grid holds {IMAGES_PER_PROMPT} images, got {len(images)}")
    r = images[0].width
    if any(im.size != (r, r) for im in images):
        raise ValueError(f"DPG-Bench's scorer cuts square images of one size; got {[im.size for im in images]}")
    grid = Image.new("RGB", (2 * r, 2 * r))
    for im, box in zip(images, crop_boxes(r)):
        grid.paste(im.convert("RGB"), box[:2])
    return grid


def split_grid(grid: Image.Image) -> list[Image.Image]:
    """The 4 images of a grid, cut as the official scorer does."""
    return [grid.crop(box) for box in crop_boxes(grid.width // 2)]


# ---------------------------------------------------------------------------------------------- arithmetic
def is_yes(answer: str) -> bool:
    return answer.strip().lower() == "yes"


def image_score(questions: Sequence[DPGQuestion], answers: Sequence[str]) -> tuple[float, list[float]]:
    """One image: (its score, the questions' scores after the dependency pass); see the module docstring.

    >>> qs = [DPGQuestion(1, "", "entity - whole (a)", (0,)), DPGQuestion(2, "", "attribute - color (a, red)", (1,)),
    ...       DPGQuestion(3, "", "entity - whole (b)", (0,))]
    >>> image_score(qs, ["no", "yes", "yes"])  # 2 depends on 1, answered no: zeroed
    (0.3333333333333333, [0.0, 0.0, 1.0])
    """
    scores = {q.qid: float(is_yes(a)) for q, a in zip(questions, answers)}
    for q in questions:  # in place, in the file's order, as the official pass
        if any(p != 0 and scores[p] == 0 for p in q.parents):
            scores[q.qid] = 0.0
    return sum(scores.values()) / len(scores), [scores[q.qid] for q in questions]


def item_result(item: DPGItem, answers: Sequence[Sequence[str]]) -> dict[str, Any]:
    """One prompt's result from the answers on each of its images (``answers[k][j]``: image k, question j)."""
    per_image = [image_score(item.questions, a) for a in answers]
    return {"item_id": item.item_id, "score": sum(s for s, _ in per_image) / len(per_image),
            "image_scores": [s for s, _ in per_image], "answers": [list(a) for a in answers],
            "categories": [q.category for q in item.questions],
            "last_image_raw": [float(is_yes(a)) for a in answers[-1]]}


def dpg_summary(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """DPG-Bench's score and category scores (0-100) of per-prompt results (:func:`item_result`).

    ``overall``: mean over prompts of the prompt scores; ``l2`` / ``l1``: mean over all questions of a category of
    the last image's answers before the dependency pass (the official arithmetic, module docstring)."""
    if not results:
        raise ValueError("no prompts to summarise")
    l2: dict[str, list[float]] = {}
    for r in results:
        for cat, s in zip(r["categories"], r["last_image_raw"]):
            l2.setdefault(cat, []).append(s)
    l1: dict[str, list[float]] = {}
    for cat, scores in l2.items():
        l1.setdefault(cat.split("-")[0].strip(), []).extend(scores)
    return {"overall": float(np.mean([r["score"] for r in results]) * 100),
            "l1": {c: float(np.mean(v) * 100) for c, v in sorted(l1.items())},
            "l2": {c: float(np.mean(v) * 100) for c, v in sorted(l2.items())},
            "num_prompts": len(results), "num_questions": sum(len(r["categories"]) for r in results)}


def format_dpg_summary(summary: Mapping[str, Any]) -> str:
    """The summary as the official ``compute_dpg_bench.py`` prints it."""
    lines = ["L1 category scores:"] + [f"\t{c}: {s}" for c, s in summary["l1"].items()]
    lines += ["L2 category scores:"] + [f"\t{c}: {s}" for c, s in summary["l2"].items()]
    lines.append(f"DPG-Bench score: {summary['overall']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- a run
def grid_path(root: str | os.PathLike, item_id: str) -> Path:
    return Path(root) / "images" / f"{item_id}.png"


def dpg_artefacts(root: Path) -> list[Path]:
    own = [root / n for n in ("images", "results.json", "dpg_answers.jsonl", "samples.png", "metrics.jsonl")]
    return [p for p in own if p.exists()]


def write_grids(model, backbone, items: Sequence[DPGItem], root: str | os.PathLike, seed: int = 0,
                batch_size: int = 16, desc: str | None = "DPG-Bench", **settings: Any) -> int:
    """Draw the 4 images of every item whose grid is missing from ``D/images``; returns how many grids were
    written. Image ``k`` of item ``j`` (the file's order) is drawn with ``image_seed(seed, 4 j + k)``."""
    from tqdm.auto import tqdm

    (Path(root) / "images").mkdir(parents=True, exist_ok=True)
    remove_partial(Path(root) / "images")
    todo = [j for j, item in enumerate(items) if not grid_path(root, item.item_id).exists()]
    jobs = [(j, k) for j in todo for k in range(IMAGES_PER_PROMPT)]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="prompt", disable=desc is None)
    pending: dict[int, list[Image.Image]] = {}
    prompts = [items[j].prompt for j, _ in jobs]
    seeds = [image_seed(seed, IMAGES_PER_PROMPT * j + k) for j, k in jobs]
    for start, images in draw_images(model, backbone, prompts, seeds, batch_size, **settings):
        for (j, _), image in zip(jobs[start:start + len(images)], images):
            pending.setdefault(j, []).append(image)
            if len(pending[j]) == IMAGES_PER_PROMPT:
                save_png(make_grid(pending.pop(j)), grid_path(root, items[j].item_id))
                bar.update(1)
    bar.close()
    return len(todo)


def score_grids(root: str | os.PathLike, items: Sequence[DPGItem], vqa: VQA, desc: str | None = "DPG-Bench scoring"
                ) -> list[dict[str, Any]]:
    """Per-prompt results (:func:`item_result`) of the grids in ``D/images``, each image asked every question."""
    from tqdm.auto import tqdm

    results = []
    for item in tqdm(items, desc=desc, unit="prompt", disable=desc is None):
        with Image.open(grid_path(root, item.item_id)) as grid:
            images = split_grid(grid.convert("RGB"))
        answers = vqa(images, [q.question for q in item.questions])
        if len(answers) != len(images) or any(len(a) != len(item.questions) for a in answers):
            raise ValueError(f"the VQA model returned {[len(a) for a in answers]} answers for {len(images)} images "
                             f"x {len(item.questions)} questions")
        results.append(item_result(item, answers))
    return results


def run_dpg(model, backbone, items: Sequence[DPGItem], output_dir: str | os.PathLike, vqa: VQA, *,
            manifest: Mapping[str, Any], seed: int = 0, batch_size: int = 16, overwrite: bool = False,
            progress: bool = True, **settings: Any) -> dict[str, Any]:
    """Sample ``items`` into ``D/images`` (resuming: grids there are kept), score them with ``vqa`` and return the
    summary plus ``results`` (per prompt), ``resolution`` (one image's side) and ``samples`` (the first image of
    up to 48 prompts spread over the list, as (prompt, PIL image, prompt score))."""
    if callable(getattr(vqa, "load", None)):
        vqa.load()  # a missing VQA model fails before an image is drawn
    root = Path(output_dir)
    resumed = prepare_output_dir(root, manifest, overwrite, dpg_artefacts)
    written = write_grids(model, backbone, items, root, seed, batch_size, desc="DPG-Bench sampling" if progress else None,
                          **settings)
    results = score_grids(root, items, vqa, desc="DPG-Bench scoring" if progress else None)
    with open(root / "dpg_answers.jsonl", "w") as fh:
        for item, r in zip(items, results):
            fh.write(json.dumps({"item_id": r["item_id"], "score": r["score"], "image_scores": r["image_scores"],
                                 "questions": [q.question for q in item.questions], "answers": r["answers"]}) + "\n")
    out = dpg_summary(results)
    with Image.open(grid_path(root, items[0].item_id)) as g:
        out["resolution"] = g.width // 2
    shown = sorted({round(j * (len(items) - 1) / 47) for j in range(48)}) if len(items) > 48 else range(len(items))
    samples = []
    for j in shown:
        with Image.open(grid_path(root, items[j].item_id)) as g:
            samples.append((items[j].prompt, split_grid(g.convert("RGB"))[0], results[j]["score"]))
    out.update(resumed=resumed, images_written=IMAGES_PER_PROMPT * written, results=results, samples=samples)
    return out
