"""GenEval-format prompts: shipped splits are deterministic, large enough and compositionally held out."""

import json
from collections import Counter

import datasets
import pytest

from trl_htgrpo.rewards.geneval_rules import TAGS, validate_metadata
from trl_htgrpo.toy.palette import COLORS
from trl_htgrpo.toy.prompts import (
    SPLIT_SIZES, compositions, generate_split, heldout_compositions, load_prompts, prompts_path,
)
from trl_htgrpo.toy.shapes import CLASSES

SEEDS = {"train": 1, "validation": 2, "heldout": 3}
SPLITTABLE = ("two_object", "counting", "position", "color_attr")
MIRROR = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@pytest.fixture(scope="module")
def splits():
    return {split: generate_split(split, seed) for split, seed in SEEDS.items()}


def composition_id(meta):
    """Composition id re-derived from the metadata alone (independent of the generator's keys)."""
    tag, inc = meta["tag"], meta["include"]
    if tag == "two_object":
        return tuple(sorted(c["class"] for c in inc))
    if tag == "counting":
        return (inc[0]["class"], inc[0]["count"])
    if tag == "position":
        target, mover = inc  # "a <mover> <rel> a <target>": clause 1 is placed relative to clause 0
        assert mover["position"][1] == 0
        k = (mover["class"], mover["position"][0], target["class"])
        return min(k, (k[2], MIRROR[k[1]], k[0]))  # "A left of B" is the same composition as "B right of A"
    if tag == "color_attr":
        return tuple(sorted((c["color"], c["class"]) for c in inc))
    raise AssertionError(tag)


@pytest.mark.parametrize("split", list(SEEDS))
def test_shipped_files_equal_generate_split(split, splits):
    with open(prompts_path(split)) as f:
        lines = f.read().splitlines()
    assert lines == [json.dumps(r) for r in splits[split]]


def test_generate_split_is_deterministic_and_seed_dependent(splits):
    assert generate_split("validation", 2) == splits["validation"]
    assert generate_split("validation", 5) != splits["validation"]


def test_split_sizes(splits):
    assert {s: len(r) for s, r in splits.items()} == {"train": 600, "validation": 120, "heldout": 240}
    for split, records in splits.items():
        assert Counter(r["tag"] for r in records) == {t: SPLIT_SIZES[split] for t in TAGS}
    assert len(splits["heldout"]) >= 240 and min(Counter(r["tag"] for r in splits["heldout"]).values()) >= 40


def test_heldout_composition_counts():
    held = heldout_compositions()
    # a quarter (rounded) of the composition ids of each splittable tag:
    # two_object 6 unordered class pairs -> round(1.5) = 2; counting 4 classes x 4 counts = 16 -> 4;
    # position 12 ordered pairs x 4 relations / 2 mirrors = 24 -> 6;
    # color_attr: unordered pairs of (colour, class) with different classes = 24 * 18 / 2 = 216 -> 54.
    assert {t: len(v) for t, v in held.items()} == {
        "single_object": 0, "two_object": 2, "counting": 4, "colors": 0, "position": 6, "color_attr": 54,
    }
    assert heldout_compositions() == held  # seeded


def test_no_heldout_composition_in_train_or_validation(splits):
    held = heldout_compositions()
    key_of = {tag: {make(k)["prompt"]: k for k in keys} for tag, (keys, make, _) in compositions().items()}
    for split, records in splits.items():
        for r in records:
            if r["tag"] not in SPLITTABLE:
                continue
            cid = composition_id(r)
            _, _, comp = compositions()[r["tag"]]
            assert comp(key_of[r["tag"]][r["prompt"]]) == cid  # generator's ids agree with the metadata
            assert (cid in held[r["tag"]]) == (split == "heldout"), (split, r["prompt"])


def test_heldout_covers_every_heldout_composition_of_small_tags(splits):
    held = heldout_compositions()
    for tag in ("two_object", "counting", "position"):
        seen = {composition_id(r) for r in splits["heldout"] if r["tag"] == tag}
        assert seen == held[tag]


def test_distinct_prompts_first(splits):
    held = heldout_compositions()
    for split, records in splits.items():
        for tag in TAGS:
            keys, _, comp = compositions()[tag]
            n_keys = len([k for k in keys if comp is None or (comp(k) in held[tag]) == (split == "heldout")])
            prompts = [r["prompt"] for r in records if r["tag"] == tag]
            n = min(len(prompts), n_keys)
            assert len(set(prompts[:n])) == n, (split, tag)
            assert len(set(prompts)) == n


def test_prompt_texts_by_hand():
    _, two, _ = compositions()["two_object"]
    _, counting, _ = compositions()["counting"]
    _, position, _ = compositions()["position"]
    _, color_attr, _ = compositions()["color_attr"]
    assert two(("square", "circle"))["prompt"] == "a photo of a square and a circle"
    c = counting(("cross", 3))
    assert c["prompt"] == "a photo of three crosses"
    assert c["include"] == [{"class": "cross", "count": 3}] and c["exclude"] == [{"class": "cross", "count": 4}]
    assert counting(("circle", 1))["prompt"] == "a photo of one circle"
    p = position(("circle", "left of", "triangle"))
    assert p["prompt"] == "a photo of a circle left of a triangle"
    assert p["include"] == [{"class": "triangle", "count": 1}, {"class": "circle", "count": 1, "position": ["left of", 0]}]
    ca = color_attr((("orange", "square"), ("blue", "cross")))
    assert ca["prompt"] == "a photo of an orange square and a blue cross"


def test_every_record_is_valid_metadata(splits):
    for records in splits.values():
        for r in records:
            validate_metadata(r, CLASSES, COLORS)


def test_load_prompts_returns_dataset():
    ds = load_prompts("train")
    assert isinstance(ds, datasets.Dataset)
    assert {"tag", "include", "exclude", "prompt"} <= set(ds.column_names)
    assert ds.num_rows == 600
    ref = generate_split("train", 1)
    for i in (0, 150, 250, 450, 599):  # one row of several tags, incl. counting (exclude) and position
        row = ds[i]
        assert row["tag"] == ref[i]["tag"] and row["prompt"] == ref[i]["prompt"]
        assert [{k: v for k, v in c.items() if v is not None} for c in row["include"]] == ref[i]["include"]
        assert list(row["exclude"]) == ref[i]["exclude"]


@pytest.mark.parametrize("bad", ["test", "Train", ""])
def test_unknown_split_raises(bad):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'validation', 'heldout'\]"):
        prompts_path(bad)
    with pytest.raises(ValueError, match="split must be one of"):
        load_prompts(bad)
