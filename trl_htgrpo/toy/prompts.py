"""GenEval-style prompts of the shapes world: a seeded generator and the three shipped splits.

Splits (jsonl under ``toy/data``, readable with ``datasets.load_dataset("json", ...)``, one
metadata field per column): ``train`` (RL prompts), ``validation`` (drawn like ``train``, for
choosing hyperparameters) and ``heldout`` (the test set, 40 prompts per tag).

Held-out compositions never occur in train or validation where a tag's prompt space allows it:
two_object holds out class pairs, counting holds out (class, count) pairs, position holds out
(class, relation, class) triples (with their mirror image, "A left of B" = "B right of A"),
color_attr holds out pairs of (colour, class). single_object (4 prompts) and colors (24 prompts)
are too small to split, so their held-out prompts also occur in training.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..rewards.geneval_rules import RELATIONS, TAGS
from .palette import COLORS
from .shapes import CLASSES

DATA_DIR = Path(__file__).parent / "data"
SPLIT_SIZES = {"train": 100, "validation": 20, "heldout": 40}  # prompts per tag
NUMBERS = ("one", "two", "three", "four")
MIRROR = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _meta(tag: str, include: list[dict], prompt: str, exclude: list[dict] | None = None) -> dict[str, Any]:
    return {"tag": tag, "include": include, "exclude": exclude or [], "prompt": f"a photo of {prompt}"}


# Each tag: the list of all its compositions (hashable keys) and a function key -> metadata.
def _single(c):
    return _meta("single_object", [{"class": c, "count": 1}], _a(c))


def _two(k):
    c1, c2 = k
    return _meta("two_object", [{"class": c1, "count": 1}, {"class": c2, "count": 1}], f"{_a(c1)} and {_a(c2)}")


def _counting(k):
    c, n = k
    noun = c if n == 1 else c + ("es" if c.endswith("s") else "s")
    return _meta("counting", [{"class": c, "count": n}], f"{NUMBERS[n - 1]} {noun}", [{"class": c, "count": n + 1}])


def _colors(k):
    color, c = k
    return _meta("colors", [{"class": c, "count": 1, "color": color}], _a(f"{color} {c}"))


def _position(k):
    c1, rel, c2 = k
    return _meta(
        "position", [{"class": c2, "count": 1}, {"class": c1, "count": 1, "position": [rel, 0]}],
        f"{_a(c1)} {rel} {_a(c2)}",
    )


def _color_attr(k):
    (col1, c1), (col2, c2) = k
    return _meta(
        "color_attr", [{"class": c1, "count": 1, "color": col1}, {"class": c2, "count": 1, "color": col2}],
        f"{_a(col1 + ' ' + c1)} and {_a(col2 + ' ' + c2)}",
    )


def compositions() -> dict[str, tuple[list, Callable, Callable | None]]:
    """tag -> (all prompt keys, key -> metadata, key -> composition id or None when unsplittable)."""
    pairs = [(a, b) for a, b in itertools.permutations(CLASSES, 2)]
    return {
        "single_object": (list(CLASSES), _single, None),
        "two_object": (pairs, _two, lambda k: tuple(sorted(k))),
        "counting": ([(c, n) for c in CLASSES for n in range(1, 5)], _counting, lambda k: k),
        "colors": ([(col, c) for col in COLORS for c in CLASSES], _colors, None),
        "position": (
            [(a, r, b) for a, b in pairs for r in RELATIONS], _position,
            lambda k: min(k, (k[2], MIRROR[k[1]], k[0])),
        ),
        "color_attr": (
            [((x, a), (y, b)) for a, b in pairs for x in COLORS for y in COLORS], _color_attr,
            lambda k: tuple(sorted(k)),
        ),
    }


def heldout_compositions(seed: int = 0, fraction: float = 0.25) -> dict[str, set]:
    """Composition ids reserved for the held-out split (a seeded quarter of each splittable tag)."""
    rng = np.random.default_rng(seed)
    out = {}
    for tag, (keys, _, comp) in compositions().items():
        if comp is None:
            out[tag] = set()
            continue
        ids = sorted({comp(k) for k in keys})
        n = max(1, round(fraction * len(ids)))
        out[tag] = {ids[i] for i in rng.permutation(len(ids))[:n]}
    return out


def generate_split(split: str, seed: int) -> list[dict[str, Any]]:
    """Draw ``SPLIT_SIZES[split]`` prompts per tag; train and validation from the training
    compositions, heldout from the held-out ones. Distinct prompts first, then repeats."""
    rng = np.random.default_rng(seed)
    held = heldout_compositions()
    records = []
    for tag in TAGS:
        keys, make, comp = compositions()[tag]
        if comp is not None:
            keys = [k for k in keys if (comp(k) in held[tag]) == (split == "heldout")]
        n = SPLIT_SIZES[split]
        order = list(rng.permutation(len(keys)))
        while len(order) < n:
            order += list(rng.permutation(len(keys)))
        records += [make(keys[i]) for i in order[:n]]
    return records


def write_splits(out_dir: Path = DATA_DIR) -> None:
    """Regenerate the shipped jsonl files (deterministic)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, seed in (("train", 1), ("validation", 2), ("heldout", 3)):
        with open(out_dir / f"{split}.jsonl", "w") as f:
            for rec in generate_split(split, seed):
                f.write(json.dumps(rec) + "\n")


def prompts_path(split: str) -> str:
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be one of {list(SPLIT_SIZES)}, got {split!r}")
    return str(DATA_DIR / f"{split}.jsonl")


def load_prompts(split: str = "train"):
    """The shipped split as a ``datasets.Dataset`` with columns tag, include, exclude, prompt."""
    import datasets

    return datasets.load_dataset("json", data_files=prompts_path(split), split="train")


if __name__ == "__main__":
    write_splits()
