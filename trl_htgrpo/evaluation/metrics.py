"""The preference rewards as evaluation metrics: each registered reward (``trl_htgrpo.rewards.get_reward``:
imagereward, hpsv2, pickscore, clipscore, aesthetic, vlm_judge ...) scores every (prompt, image) of a benchmark
run; per metric the mean, standard deviation (over images, ``ddof=0``), min, max and count.

One metric at a time: its model loads, scores all images (read from disk ``chunk`` at a time) and is released
before the next loads, so the models never share the accelerator's memory."""

from __future__ import annotations

import gc
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

#: rewards that need GenEval metadata columns, not a (prompt, image) pair
NOT_METRICS = ("geneval", "geneval_strict", "geneval_remote")

ImageSource = Image.Image | str | os.PathLike | Callable[[], Image.Image]


def parse_metrics(text: str | Sequence[str] | None) -> list[str]:
    """``"imagereward,hpsv2"`` (or a list) -> reward names, checked against the registry now (before sampling)."""
    from ..plugins import load_plugins
    from ..rewards import REWARDS

    parts = [text] if isinstance(text, str) else list(text or [])
    names = [n.strip() for part in parts for n in part.split(",") if n.strip()]
    if any(n not in REWARDS for n in names):
        load_plugins()
    for n in names:
        if n in NOT_METRICS:
            raise ValueError(f"--metrics {n}: GenEval's correctness is the geneval benchmark (--benchmark geneval), "
                             "not a metric of (prompt, image) pairs")
        if n not in REWARDS:
            raise ValueError(f"--metrics {n}: unknown reward; registered: {sorted(set(REWARDS) - set(NOT_METRICS))}")
    return names


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if callable(source):
        return source()
    with Image.open(source) as im:
        return im.convert("RGB")


def spread(scores: Sequence[float | None]) -> dict[str, float | int]:
    """mean, std (ddof=0), min, max over the scores that are not None; ``n`` scored, ``failed`` None.

    >>> spread([1.0, 3.0, None])
    {'mean': 2.0, 'std': 1.0, 'min': 1.0, 'max': 3.0, 'n': 2, 'failed': 1}
    """
    ok = np.asarray([s for s in scores if s is not None], dtype=np.float64)
    stats = ({"mean": float(ok.mean()), "std": float(ok.std()), "min": float(ok.min()), "max": float(ok.max())}
             if ok.size else {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")})
    return {**stats, "n": int(ok.size), "failed": len(scores) - int(ok.size)}


def score_metrics(names: Sequence[str], prompts: Sequence[str], images: Sequence[ImageSource],
                  options: Mapping[str, Mapping[str, Any]] | None = None, chunk: int = 64,
                  desc: str | None = "metrics") -> tuple[dict[str, dict[str, float | int]], dict[str, list]]:
    """Score every (prompt, image) with each metric; returns (``{name: spread}``, ``{name: per-image scores}``).

    ``images``: PIL images, paths, or zero-argument callables returning an image (opened ``chunk`` at a time);
    ``options``: keyword arguments per metric name for ``get_reward`` (e.g. ``{"clipscore": {"model_id": ...}}``)."""
    from tqdm.auto import tqdm

    from ..rewards import get_reward

    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts for {len(images)} images")
    summary, per_image = {}, {}
    for name in names:
        scorer = get_reward(name, **dict((options or {}).get(name, {})))
        if callable(getattr(scorer, "load", None)):
            scorer.load()
        scores: list[float | None] = []
        for start in tqdm(range(0, len(images), chunk), desc=f"{desc}: {name}" if desc else None, unit="batch",
                          disable=desc is None):
            batch = [_open(s) for s in images[start:start + chunk]]
            scores += list(scorer(list(prompts[start:start + chunk]), batch))
        summary[name], per_image[name] = spread(scores), scores
        del scorer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return summary, per_image
