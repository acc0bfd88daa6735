"""The pixel detector + GenEval rules on rendered ground truth, and GenEvalReward as a TRL reward."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from trl_htgrpo.rewards import GenEvalReward
from trl_htgrpo.toy import ShapesDetector
from trl_htgrpo.rewards.geneval_rules import TAGS, Detection
from trl_htgrpo.toy import COLORS, Scene, SceneObject, decode_codes, render_scene, sample_scene
from trl_htgrpo.toy.palette import BACKGROUND_RGB, PALETTE, edge_code, fill_code
from trl_htgrpo.toy.prompts import generate_split
from trl_htgrpo.toy.shapes import CLASSES

SLOTS = [(r, c) for r in (0, 4, 8) for c in (0, 4, 8)]  # 9 template corners, one free tile between neighbours


def image_of(*objects):
    return decode_codes(render_scene(Scene(list(objects))))


@pytest.fixture(scope="module")
def heldout():
    return generate_split("heldout", 3)


@pytest.fixture(scope="module")
def strict():
    return GenEvalReward("shapes", strict=True)


# ----------------------------------------------------------------------------------------------- detector
@pytest.mark.parametrize("cls", CLASSES)
def test_detects_every_class_and_color_exactly(cls):
    det = ShapesDetector()
    for k, color in enumerate(COLORS):
        row, col = SLOTS[k]
        (d,) = det(image_of(SceneObject(cls, color, row, col)))
        # every template spans 3x3 tiles of 4 px: box (4 col, 4 row, 4 col + 12, 4 row + 12)
        assert d == Detection(cls, (4.0 * col, 4.0 * row, 4.0 * col + 12, 4.0 * row + 12), 1.0, color)


def test_detects_several_objects():
    objs = [SceneObject("square", "red", 0, 0), SceneObject("circle", "red", 0, 4), SceneObject("cross", "blue", 8, 8)]
    dets = sorted(ShapesDetector()(image_of(*objs)), key=lambda d: d.box)
    assert [(d.cls, d.color, d.score, d.box) for d in dets] == [
        ("square", "red", 1.0, (0.0, 0.0, 12.0, 12.0)),
        ("circle", "red", 1.0, (16.0, 0.0, 28.0, 12.0)),
        ("cross", "blue", 1.0, (32.0, 32.0, 44.0, 44.0)),
    ]
    assert ShapesDetector()(image_of()) == []


def test_detector_reads_pixels_only_removing_the_centre_tile_of_a_square():
    image = image_of(SceneObject("square", "green", 2, 3))
    (d,) = ShapesDetector()(image)
    assert (d.cls, d.score, d.box, d.color) == ("square", 1.0, (12.0, 8.0, 24.0, 20.0), "green")
    px = np.asarray(image).copy()
    px[12:16, 16:20] = BACKGROUND_RGB  # centre tile (row 3, col 4) painted over in pixel space
    (d,) = ShapesDetector()(Image.fromarray(px, mode="RGB"))
    assert (d.cls, d.score, d.box, d.color) == ("circle", 1.0, (12.0, 8.0, 24.0, 20.0), "green")


def test_shade_is_detail_not_layout():
    codes = render_scene(Scene([SceneObject("triangle", "purple", 5, 5)]))
    flipped = np.where(codes == fill_code("purple"), edge_code("purple"),
                       np.where(codes == edge_code("purple"), fill_code("purple"), codes))
    assert not np.array_equal(flipped, codes)
    assert ShapesDetector()(decode_codes(flipped)) == ShapesDetector()(decode_codes(codes))


def test_a_stray_tile_is_a_weak_cross():
    px = np.asarray(image_of(SceneObject("square", "red", 0, 0))).copy()
    px[40:44, 40:44] = PALETTE[fill_code("blue")]  # one blue tile at (10, 10)
    dets = ShapesDetector()(Image.fromarray(px, mode="RGB"))
    stray = [d for d in dets if d.color == "blue"]
    # a single tile overlaps each template by 1 cell: IoU 1/9 square, 1/8 circle, 1/6 triangle, 1/5 cross
    assert len(dets) == 2 and len(stray) == 1
    assert (stray[0].cls, stray[0].box) == ("cross", (40.0, 40.0, 44.0, 44.0))
    assert stray[0].score == pytest.approx(0.2, abs=1e-12)
    # below GenEval's threshold, so it does not break "a square"
    reward = GenEvalReward("shapes", strict=True)
    assert reward(["p"], [Image.fromarray(px, mode="RGB")], tag=["single_object"],
                  include=[[{"class": "square", "count": 1}]]) == [1.0]


def test_same_colour_objects_that_touch_merge_even_diagonally():
    # squares at (0,0) and (3,3) touch at a corner: one 18-tile component; best IoU 9/18 = 0.5 (square)
    (d,) = ShapesDetector()(image_of(SceneObject("square", "red", 0, 0), SceneObject("square", "red", 3, 3)))
    assert (d.cls, d.score, d.box) == ("square", 0.5, (0.0, 0.0, 24.0, 24.0))
    # different colours stay two objects
    dets = ShapesDetector()(image_of(SceneObject("square", "red", 0, 0), SceneObject("square", "blue", 0, 3)))
    assert sorted((d.color, d.score) for d in dets) == [("blue", 1.0), ("red", 1.0)]


def test_detector_rejects_bad_images():
    with pytest.raises(ValueError, match="48x48"):
        ShapesDetector()(Image.new("RGB", (64, 64)))
    with pytest.raises(ValueError, match="mode 'RGB'"):
        ShapesDetector()(Image.new("RGBA", (48, 48)))


# ----------------------------------------------------------------------------------------------- ground truth
def test_ground_truth_scenes_score_one_on_every_tag(heldout, strict):
    rng = np.random.default_rng(0)
    records = heldout + generate_split("train", 1)[::5]  # 240 + 120 records, all six tags
    images = [decode_codes(render_scene(sample_scene(m, rng))) for m in records]
    summary = strict.summary(images, records)
    assert summary == {"overall": 1.0, "tags": {t: 1.0 for t in sorted(TAGS)}}
    dense = GenEvalReward("shapes")(
        [m["prompt"] for m in records], images, tag=[m["tag"] for m in records],
        include=[m["include"] for m in records], exclude=[m["exclude"] for m in records],
    )
    assert dense == [1.0] * len(records)


def _score(reward, meta, scene):
    return reward([meta["prompt"]], [decode_codes(render_scene(scene))], tag=[meta["tag"]],
                  include=[meta["include"]], exclude=[meta["exclude"]])[0]


def test_wrong_colour_fails_colors_and_color_attr(heldout, strict):
    rng = np.random.default_rng(1)
    dense = GenEvalReward("shapes")
    n = 0
    for meta in heldout:
        if meta["tag"] not in ("colors", "color_attr"):
            continue
        scene = sample_scene(meta, rng)
        assert _score(strict, meta, scene) == 1.0
        first = scene.objects[0]  # the object of clause 0
        wrong = COLORS[(COLORS.index(first.color) + 1) % len(COLORS)]
        bad = Scene([dataclasses.replace(first, color=wrong)] + scene.objects[1:])
        assert _score(strict, meta, bad) == 0.0, meta["prompt"]
        # partial credit: colors has one clause (0); color_attr two clauses (0 and 1) -> 0.5
        assert _score(dense, meta, bad) == (0.0 if meta["tag"] == "colors" else 0.5)
        n += 1
    assert n == 80


def test_extra_object_fails_counting(heldout, strict):
    dense = GenEvalReward("shapes")
    n = 0
    for meta in heldout:
        if meta["tag"] != "counting":
            continue
        (clause,) = meta["include"]
        count = clause["count"]
        objs = [SceneObject(clause["class"], COLORS[k % 6], r, c) for k, (r, c) in enumerate(SLOTS[: count + 1])]
        assert _score(strict, meta, Scene(objs[:count])) == 1.0
        assert _score(strict, meta, Scene(objs)) == 0.0, meta["prompt"]
        assert _score(dense, meta, Scene(objs)) == 0.5  # include 1, exclude 0
        if count > 1:  # one too few: include (count - 1) / count, exclude 1
            assert _score(dense, meta, Scene(objs[: count - 1])) == pytest.approx(((count - 1) / count + 1) / 2)
        n += 1
    assert n == 40


def test_swapped_relation_fails_position(heldout, strict):
    rng = np.random.default_rng(2)
    dense = GenEvalReward("shapes")
    n = 0
    for meta in heldout:
        if meta["tag"] != "position":
            continue
        scene = sample_scene(meta, rng)
        a, b = scene.objects  # target (clause 0), mover (clause 1)
        assert _score(strict, meta, scene) == 1.0
        swapped = Scene([dataclasses.replace(a, row=b.row, col=b.col), dataclasses.replace(b, row=a.row, col=a.col)])
        assert _score(strict, meta, swapped) == 0.0, meta["prompt"]
        assert _score(dense, meta, swapped) == 0.5  # both found, relation credit 0
        n += 1
    assert n == 40


# ----------------------------------------------------------------------------------------------- TRL reward
def test_reward_trl_signature():
    reward = GenEvalReward("shapes")
    assert reward.__name__ == "geneval" and GenEvalReward("shapes", strict=True).__name__ == "geneval_strict"
    images = [image_of(SceneObject("square", "red", 0, 0), SceneObject("circle", "blue", 0, 6)),
              image_of(SceneObject("square", "red", 0, 0))]
    include = [[{"class": "square", "count": 1}, {"class": "circle", "count": 1}]] * 2
    out = reward(prompts=["a photo of a square and a circle"] * 2, completions=images,
                 tag=["two_object"] * 2, include=include, exclude=[[], []])
    assert out == [1.0, 0.5] and all(type(x) is float for x in out)
    # extra columns TRL passes through are ignored; exclude may be absent
    out = GenEvalReward("shapes", strict=True)(prompts=["p"] * 2, completions=images, tag=["two_object"] * 2,
                                     include=include, prompt_id=[0, 1], trainer_state=None)
    assert out == [1.0, 0.0]


def test_reward_on_dataset_rows():
    from trl_htgrpo.toy import load_prompts

    ds = load_prompts("heldout").select([0, 45, 85, 125, 165, 205])  # one row of each tag
    assert [r["tag"] for r in ds] == list(TAGS)
    rng = np.random.default_rng(3)
    images = [decode_codes(render_scene(sample_scene(r, rng))) for r in ds]
    out = GenEvalReward("shapes", strict=True)(ds["prompt"], images, tag=ds["tag"], include=ds["include"], exclude=ds["exclude"])
    assert out == [1.0] * 6


def test_reward_rejects_non_pil_completions():
    with pytest.raises(TypeError, match="expects PIL images as completions, got ndarray"):
        GenEvalReward("shapes")(["p"], [np.zeros((48, 48, 3), dtype=np.uint8)], tag=["single_object"],
                        include=[[{"class": "square", "count": 1}]])


def test_reward_needs_include_column():
    with pytest.raises(ValueError, match="needs the dataset column 'include'"):
        GenEvalReward("shapes")(["p"], [image_of()], tag=["single_object"])


def test_reward_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="must be 48x48 px"):
        GenEvalReward("shapes")(["p"], [Image.new("RGB", (32, 32))], tag=["single_object"], include=[[{"class": "square", "count": 1}]])


def test_reward_validates_metadata_against_the_detector():
    with pytest.raises(ValueError, match=r"'include\[0\]\.class' is 'dog'"):
        GenEvalReward("shapes")(["p"], [image_of()], tag=["single_object"], include=[[{"class": "dog", "count": 1}]])
    with pytest.raises(ValueError, match=r"'include\[0\]\.color' is 'pink'; allowed values: \['red', 'orange'"):
        GenEvalReward("shapes")(["p"], [image_of()], tag=["colors"], include=[[{"class": "square", "count": 1, "color": "pink"}]])
    with pytest.raises(ValueError, match="got 2 images for 1 metadata records"):
        GenEvalReward("shapes").verdicts([image_of(), image_of()], [{"tag": "colors", "include": [{"class": "square", "count": 1}]}])
