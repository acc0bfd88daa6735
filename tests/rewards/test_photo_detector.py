"""The photograph detector: tiny random-config Mask2Former and CLIP saved to folders and loaded by their ids.

Nothing is downloaded. Post-processing arithmetic is checked with a stand-in forward whose logits are chosen
by hand; loading, batching and resizing with the real (tiny) transformers models; colour with CLIP embeddings
replaced by functions whose answer is known.
"""

import ast
import pathlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from trl_htgrpo.rewards import GenEvalReward, get_detector
from trl_htgrpo.rewards.clip_colors import COLOR_TEMPLATES, GREY, CLIPColorClassifier, clip_transform, masked_crop
from trl_htgrpo.rewards.geneval_rules import GENEVAL_CLASSES, GENEVAL_COLORS, Detection
from trl_htgrpo.rewards.hub_loading import ModelLoadError
from trl_htgrpo.rewards.photo_detector import Mask2FormerDetector, geneval_names, mask_boxes

from tiny_photo import COCO_LABELS, save_tiny_photo_models
DOG, CAT, PERSON, MOUSE = COCO_LABELS.index("dog"), COCO_LABELS.index("cat"), 0, COCO_LABELS.index("mouse")


# ----------------------------------------------------------------------------------------------- tiny models
@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """(mask2former folder, clip folder): random weights, GenEval-sized vocabularies, tiny widths."""
    return save_tiny_photo_models(tmp_path_factory.mktemp("tiny-photo"))


def make_detector(tiny_dirs, **kw):
    return Mask2FormerDetector(model_id=tiny_dirs[0], clip_model_id=tiny_dirs[1], device="cpu", **kw)


def noise_image(seed, h=64, w=64):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------------------------- class names
def test_coco_labels_map_to_genevals_80_names_in_order():
    names = geneval_names(dict(enumerate(COCO_LABELS)))
    assert [names[i] for i in range(80)] == list(GENEVAL_CLASSES)
    # the three names GenEval spells differently (its object_names.txt), and the ones it spells the COCO way
    assert (names[MOUSE], names[MOUSE + 1], names[MOUSE + 2]) == ("computer mouse", "tv remote", "computer keyboard")
    assert (names[3], names[4], names[57], names[60], names[62]) == ("motorcycle", "airplane", "couch", "dining table", "tv")
    assert len(set(GENEVAL_CLASSES)) == 80


def test_older_spellings_label_map_and_errors():
    assert geneval_names({0: "motorbike", 1: "diningtable", 2: "tvmonitor"}) == {0: "motorcycle", 1: "dining table", 2: "tv"}
    assert geneval_names({0: "dog", 1: "wall"}, label_map={"wall": None}) == {0: "dog", 1: None}
    with pytest.raises(ValueError, match=r"'m' has labels that are not GenEval class names: \['wall'\]; map them with "
                                         r"label_map=.*GenEval's names: \['person', 'bicycle'"):
        geneval_names({0: "dog", 1: "wall"}, model_id="m")
    with pytest.raises(ValueError, match=r"labels 'motorbike' and 'motorcycle' both map to 'motorcycle'"):
        geneval_names({0: "motorbike", 1: "motorcycle"})


# ----------------------------------------------------------------------------------------------- registry, laziness
def test_registered_as_mask2former_and_lazy(tiny_dirs):
    det = get_detector("mask2former", model_id=tiny_dirs[0], clip_model_id=tiny_dirs[1], device="cpu")
    assert isinstance(det, Mask2FormerDetector) and det._model is None and det._colors is None  # nothing loaded yet
    assert (det.threshold, det.counting_threshold, det.colors) == (0.3, 0.9, GENEVAL_COLORS)
    assert det.classes == GENEVAL_CLASSES  # read from the config alone
    assert det._model is None


def test_the_core_imports_no_model_code_at_module_level():
    """``import trl_htgrpo`` must not import the photograph detector or transformers' Mask2Former/CLIP."""
    root = pathlib.Path(__file__).parents[2] / "trl_htgrpo" / "rewards"
    lazy = {"photo_detector", "clip_colors", "hub_loading"}
    for name in ("__init__.py", "detectors.py", "geneval.py", "geneval_rules.py"):
        for node in ast.parse((root / name).read_text()).body:  # module level only
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = getattr(node, "module", None) or ""
                names = {a.name for a in node.names}
                assert not ({mod.split(".")[-1]} | names) & lazy, f"{name} imports {mod} {names} at module level"
                assert "transformers" not in mod and not any("transformers" in n for n in names), name
    for name in ("photo_detector.py", "clip_colors.py", "hub_loading.py"):
        for node in ast.parse((root / name).read_text()).body:
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("transformers"), f"{name} imports transformers at module level"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("transformers") for a in node.names), name


def test_default_device_is_this_process_accelerate_device(tiny_dirs):
    det = Mask2FormerDetector(model_id=tiny_dirs[0], clip_model_id=tiny_dirs[1])
    assert det.device == torch.device("cpu")
    with pytest.raises(ValueError, match=r"dtype torch.bfloat16 is for a GPU; on CPU use dtype='float32'"):
        _ = Mask2FormerDetector(model_id=tiny_dirs[0], device="cpu", dtype="bfloat16").device
    with pytest.raises(ValueError, match=r"dtype='fp8'; allowed values: \['float32', 'bfloat16', 'float16'\]"):
        Mask2FormerDetector(dtype="fp8")


# ----------------------------------------------------------------------------------------------- loading errors
def test_load_errors_name_the_model_and_the_reason(tiny_dirs, tmp_path):
    with pytest.raises(ModelLoadError, match=r"cannot load the Mask2Former instance-segmentation model '/no/such/dir': "
                                             r"missing: no such folder"):
        Mask2FormerDetector(model_id="/no/such/dir", device="cpu").classes
    with pytest.raises(ModelLoadError, match=r"'trl-htgrpo-tests/no-such-model': offline: not in the local "
                                             r"Hugging Face cache"):
        Mask2FormerDetector(model_id="trl-htgrpo-tests/no-such-model", local_files_only=True).classes
    with pytest.raises(ModelLoadError, match=r"model '.*clip': wrong architecture: it is a 'clip' checkpoint "
                                             r"\(CLIPModel\); this needs a 'mask2former' checkpoint"):
        Mask2FormerDetector(model_id=tiny_dirs[1], device="cpu").detect([noise_image(0)])
    det = Mask2FormerDetector(model_id=tiny_dirs[0], clip_model_id=tiny_dirs[0], device="cpu")
    with pytest.raises(ModelLoadError, match=r"cannot load the CLIP model for GenEval's colour classification "
                                             r"'.*mask2former': wrong architecture: it is a 'mask2former' checkpoint"):
        det.classify_colors([noise_image(0)], [[Detection("dog", (0, 0, 8, 8), 0.9)]])


# ----------------------------------------------------------------------------------------------- hand-made logits
L = 1000.0  # mask logit: sigmoid(+-L) is exactly 1 / 0 in float32, so a mask's mean probability is 1


def class_row(label, p):
    """81 logits whose softmax gives ``label`` probability p: e^a / (e^a + 80) = p, the other 80 logits 0."""
    row = torch.zeros(81)
    row[label] = float(np.log(80 * p / (1 - p)))
    return row


class HandModel:
    """Stands in for the Mask2Former forward: fixed class logits, masks from cells of the (H/4, W/4) grid."""

    def __init__(self, queries):  # [(label, p, [(row0, row1, col0, col1)] inclusive cell ranges or [])]
        self.queries = queries
        self.calls = []

    def __call__(self, pixel_values):
        B, _, Hp, Wp = pixel_values.shape
        self.calls.append(tuple(pixel_values.shape))
        cls = torch.stack([class_row(label, p) for label, p, _ in self.queries])  # (Q, 81)
        masks = torch.full((len(self.queries), Hp // 4, Wp // 4), -L)
        for q, (_, _, cells) in enumerate(self.queries):
            for r0, r1, c0, c1 in cells:
                masks[q, r0:r1 + 1, c0:c1 + 1] = L
        return SimpleNamespace(class_queries_logits=cls.expand(B, -1, -1), masks_queries_logits=masks.expand(B, -1, -1, -1))


HAND = [
    (DOG, 0.95, [(2, 5, 1, 3)]),  # full-res rows 8..23, cols 4..15 -> box (4, 8, 16, 24)
    (DOG, 0.5, [(10, 11, 10, 13)]),  # box (40, 40, 56, 48): above 0.3, below the counting threshold 0.9
    (CAT, 0.2, [(0, 1, 0, 1)]),  # 0.2 <= min_score 0.3: dropped
    (MOUSE, 0.95, [(12, 15, 0, 2)]),  # COCO "mouse" -> GenEval "computer mouse", box (0, 48, 12, 64)
    (DOG, 0.95, []),  # empty mask: score 0.95 * 0 = 0, dropped
]


@pytest.fixture
def hand_detector(tiny_dirs, monkeypatch):
    det = make_detector(tiny_dirs, scale=(64, 64))
    model = HandModel(HAND)
    monkeypatch.setattr(det, "_load", lambda: model)
    return det, model


def summary(dets):
    return [(d.cls, d.box, round(d.score, 6)) for d in dets]


def test_boxes_from_masks_scores_and_thresholds_by_hand(hand_detector):
    det, model = hand_detector
    (dets,) = det.detect([noise_image(0)])
    # 64x64 with scale (64, 64): factor 1, no padding; a mask cell j covers pixels 4j..4j+3 exactly (bilinear
    # upsampling of +-L crosses 0 half-way between cell centres); score = p * 1 (mask probabilities saturate)
    assert model.calls == [(1, 3, 64, 64)]
    assert summary(dets) == [("dog", (4.0, 8.0, 16.0, 24.0), 0.95), ("dog", (40.0, 40.0, 56.0, 48.0), 0.5),
                             ("computer mouse", (0.0, 48.0, 12.0, 64.0), 0.95)]
    assert all(d.color is None and d.mask.shape == (64, 64) and d.mask.dtype == bool for d in dets)
    # the 16x12 rectangle less its 4 corner pixels: a corner sits 0.625 x 0.625 inside the cell block, so its
    # interpolated logit is L (0.390625 - 0.609375) < 0; an edge pixel is 0.625 inside along one axis only: > 0
    expect = np.zeros((64, 64), dtype=bool)
    expect[8:24, 4:16] = True
    expect[[8, 8, 23, 23], [4, 15, 4, 15]] = False
    assert (dets[0].mask == expect).all()
    for d in dets:  # each box is the mask's tight box
        assert tuple(mask_boxes(torch.from_numpy(d.mask)[None])[0].tolist()) == d.box


def test_resize_pad_and_rescale_by_hand(hand_detector):
    det, model = hand_detector
    # 32x32 -> factor min(64/32, 64/32) = 2 -> 64x64 input; masks come back at 32x32: bilinear 64 -> 32 samples
    # input pixel 2i + 0.5, so pixels 4j..4j+3 become 2j..2j+1 and every box halves
    (dets,) = det.detect([noise_image(1, 32, 32)])
    assert model.calls == [(1, 3, 64, 64)]
    assert summary(dets) == [("dog", (2.0, 4.0, 8.0, 12.0), 0.95), ("dog", (20.0, 20.0, 28.0, 24.0), 0.5),
                             ("computer mouse", (0.0, 24.0, 6.0, 32.0), 0.95)]
    assert dets[0].mask.shape == (32, 32)
    # 48 high x 40 wide -> factor min(64/48, 64/40) = 1.333 -> 64 x 53, zero-padded to 64 x 64
    assert det.resized_size(48, 40) == (64, 53)
    (dets,) = det.detect([noise_image(2, 48, 40)])
    assert model.calls[-1] == (1, 3, 64, 64) and dets[0].mask.shape == (48, 40)
    assert det.resized_size(512, 512) == (64, 64) and make_detector(("m", "c")).resized_size(512, 512) == (800, 800)
    assert make_detector(("m", "c")).resized_size(480, 1000) == (640, 1333)  # 1333 / 1000 < 800 / 480


def test_per_class_cap_keeps_genevals_order_on_ties(tiny_dirs, monkeypatch):
    # 18 dog queries, one cell each (query q at cell row q // 8 * 2, col q % 8 * 2); p decreasing, except that
    # queries 15 and 16 tie exactly at 0.80: GenEval's order puts the later one (16) first, so the 16 kept are
    # queries 0..14 and 16; query 15 and query 17 (0.5) are dropped
    ps = [0.99 - 0.01 * q for q in range(15)] + [0.80, 0.80, 0.5]
    queries = [(DOG, p, [(q // 8 * 2, q // 8 * 2, q % 8 * 2, q % 8 * 2)]) for q, p in enumerate(ps)]
    det = make_detector(tiny_dirs, scale=(64, 64))
    monkeypatch.setattr(det, "_load", lambda: HandModel(queries))
    (dets,) = det.detect([noise_image(0)])
    kept = [(int(d.box[1]) // 8) * 8 + int(d.box[0]) // 8 for d in dets]  # query index from the box
    assert kept == list(range(15)) + [16]
    assert dets[-1].score == pytest.approx(0.80, abs=1e-6)


# ----------------------------------------------------------------------------------------------- real tiny model
def test_real_tiny_model_through_the_loading_path(tiny_dirs):
    det = make_detector(tiny_dirs, scale=(64, 64))
    images = [noise_image(s) for s in range(3)]
    batched = det.detect(images)
    assert det._model.__class__.__name__ == "Mask2FormerForInstances" and det._model.config.num_labels == 80
    assert all(len(d) > 0 for d in batched)  # the person bias puts scores above 0.3
    for dets in batched:
        for d in dets:
            assert d.cls == "person" and 0.3 < d.score <= 1.0 and d.mask.shape == (64, 64)
            assert tuple(mask_boxes(torch.from_numpy(d.mask)[None])[0].tolist()) == d.box
            assert 0 <= d.box[0] < d.box[2] <= 64 and 0 <= d.box[1] < d.box[3] <= 64
    one_by_one = [det.detect([im])[0] for im in images]
    assert det(images[0]) == one_by_one[0]
    assert_same(batched, one_by_one)


def assert_same(a, b):
    assert len(a) == len(b)
    for da, db in zip(a, b):
        assert [(d.cls, d.box) for d in da] == [(d.cls, d.box) for d in db]
        assert [d.score for d in da] == pytest.approx([d.score for d in db], abs=1e-5)
        for x, y in zip(da, db):
            assert (x.mask != y.mask).mean() < 1e-3


def test_mixed_sizes_batch_like_one_by_one(tiny_dirs):
    det = make_detector(tiny_dirs, scale=(64, 64), batch_size=2)
    images = [noise_image(0), noise_image(1, 48, 40), noise_image(2), noise_image(3, 48, 40), noise_image(4)]
    batched = det.detect(images)
    assert [d[0].mask.shape for d in batched] == [(64, 64), (48, 40), (64, 64), (48, 40), (64, 64)]
    assert_same(batched, [det.detect([im])[0] for im in images])


# ----------------------------------------------------------------------------------------------- colour crops
def ring_scene():
    """64x64: green background, a red 3-px square ring (16..47) around a blue interior; the ring's mask."""
    px = np.zeros((64, 64, 3), dtype=np.uint8)
    px[:] = (0, 128, 0)
    px[16:48, 16:48] = (255, 0, 0)
    px[19:45, 19:45] = (0, 0, 255)
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 16:48] = True
    mask[19:45, 19:45] = False
    return Image.fromarray(px), mask


def test_masked_crop_is_the_object_over_grey_cropped_to_its_box():
    image, mask = ring_scene()
    crop = np.asarray(masked_crop(image, Detection("dog", (16.0, 16.0, 48.0, 48.0), 0.9, mask=mask)))
    assert crop.shape == (32, 32, 3)
    assert (crop[:3] == (255, 0, 0)).all() and (crop[3:29, 3:29] == GREY).all()  # ring kept, interior grey
    assert GREY == (153, 153, 153)
    plain = np.asarray(masked_crop(image, Detection("dog", (16.0, 16.0, 48.0, 48.0), 0.9)))  # no mask: the box
    assert (plain[3:29, 3:29] == (0, 0, 255)).all()
    with pytest.raises(ValueError, match=r"mask has shape \(32, 32\), the image is 64x64"):
        masked_crop(image, Detection("dog", (0, 0, 8, 8), 0.9, mask=mask[:32, :32]))


def test_clip_transform_is_open_clips_resize_centre_crop_normalise():
    # a uniform crop stays uniform: every value is (c / 255 - mean) / std
    x = clip_transform(Image.new("RGB", (10, 30), (255, 0, 51)), 8)
    assert x.shape == (3, 8, 8)
    expect = (torch.tensor([1.0, 0.0, 0.2]) - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711])
    assert torch.allclose(x, expect[:, None, None].expand(3, 8, 8), atol=1e-6)
    # 9 wide x 8 high: short side already 8, no resize; the centre-crop offset is int(round(0.5)) = 0 (torchvision's
    # rounding), so column 0 (white) is kept and column 8 dropped
    px = np.zeros((8, 9, 3), dtype=np.uint8)
    px[:, 0] = 255
    x = clip_transform(Image.fromarray(px), 8)
    assert (x[:, :, 0] > 1.5).all() and (x[:, :, 1:] < -1.4).all()


PALETTE = {"red": (255, 0, 0), "orange": (255, 165, 0), "yellow": (255, 255, 0), "green": (0, 128, 0),
           "blue": (0, 0, 255), "purple": (128, 0, 128), "pink": (255, 192, 203), "brown": (139, 69, 19),
           "black": (0, 0, 0), "white": (255, 255, 255)}


def known_clip(classifier, monkeypatch):
    """Text embedding of a prompt = one-hot of its colour word; image embedding = pixel counts per palette colour
    (pixels within 60 of one; the grey background is near none). So the answer is the crop's dominant colour."""
    texts_seen = []

    def encode_text(texts):
        texts_seen.append(list(texts))
        words = [t[len("a photo of a "):].split(" ")[0].split("-")[0] for t in texts]
        return torch.eye(10)[[GENEVAL_COLORS.index(w) for w in words]]

    def encode_images(pixels):
        rgb = (pixels * torch.tensor(CLIP_STD)[:, None, None] + torch.tensor(CLIP_MEAN)[:, None, None]) * 255
        ref = torch.tensor([PALETTE[c] for c in GENEVAL_COLORS], dtype=torch.float32)  # (10, 3)
        dist = (rgb.permute(0, 2, 3, 1)[..., None, :] - ref).norm(dim=-1)  # (n, S, S, 10)
        near = dist.min(-1).values < 60
        one_hot = torch.nn.functional.one_hot(dist.argmin(-1), 10) * near[..., None]
        return one_hot.flatten(1, 2).sum(1).float() + 1e-3  # (n, 10)

    monkeypatch.setattr(classifier, "encode_text", encode_text)
    monkeypatch.setattr(classifier, "encode_images", encode_images)
    return texts_seen


CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def test_colour_of_masked_crops_with_known_embeddings(tiny_dirs, monkeypatch):
    image, ring = ring_scene()
    disc = np.zeros((64, 64), dtype=bool)
    disc[2:10, 50:60] = True
    px = np.asarray(image).copy()
    px[disc] = (255, 255, 0)
    image2 = Image.fromarray(px)
    dets = [Detection("dog", (16.0, 16.0, 48.0, 48.0), 0.9, mask=ring), Detection("cat", (50.0, 2.0, 60.0, 10.0), 0.8, mask=disc)]
    clf = CLIPColorClassifier(tiny_dirs[1], batch_size=1)
    texts = known_clip(clf, monkeypatch)
    # the ring's crop is red ring over grey: red (the unmasked box would be mostly blue); the disc is yellow
    assert clf([image, image2], [dets[:1], dets]) == [["red"], ["red", "yellow"]]
    # one classifier per class name, GenEval's 3 prompts x 10 colours, colour-major
    assert len(texts) == 2
    assert texts[0][:6] == ["a photo of a red dog", "a photo of a red-colored dog", "a photo of a red object",
                            "a photo of a orange dog", "a photo of a orange-colored dog", "a photo of a orange object"]
    assert texts[0] == [t.format(color=c, cls="dog") for c in GENEVAL_COLORS for t in COLOR_TEMPLATES]
    assert texts[1][-1] == "a photo of a white object" and texts[1][-2] == "a photo of a white-colored cat"
    assert clf([image], [[]]) == [[]] and len(texts) == 2  # cached: no new text forward
    # without the mask the box is mostly blue
    assert clf([image], [[Detection("dog", (16.0, 16.0, 48.0, 48.0), 0.9)]]) == [["blue"]]


def test_real_tiny_clip_batched_equals_one_by_one(tiny_dirs):
    image, ring = ring_scene()
    dets = [Detection("dog", (16.0, 16.0, 48.0, 48.0), 0.9, mask=ring), Detection("cat", (0.0, 0.0, 20.0, 9.0), 0.8)]
    det = make_detector(tiny_dirs, clip_batch_size=64)
    together = det.classify_colors([image, image], [dets, dets[1:]])
    assert [len(c) for c in together] == [2, 1] and all(c in GENEVAL_COLORS for cs in together for c in cs)
    one = make_detector(tiny_dirs, clip_batch_size=1).classify_colors([image, image], [dets, dets[1:]])
    assert one == together and together[0][1] == together[1][0]


# ----------------------------------------------------------------------------------------------- as a reward
def test_reward_classifies_only_what_colour_clauses_read(hand_detector, monkeypatch):
    det, _ = hand_detector
    asked = []

    def classify_colors(images, detections):
        asked.append([[(d.cls, d.box) for d in ds] for ds in detections])
        return [["red" if d.cls == "dog" else "white" for d in ds] for ds in detections]

    monkeypatch.setattr(det, "classify_colors", classify_colors)
    reward = GenEvalReward(det, strict=True)
    image = noise_image(0)
    metas = [
        {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}]},
        {"tag": "two_object", "include": [{"class": "dog", "count": 1}, {"class": "computer mouse", "count": 1}]},
        {"tag": "color_attr", "include": [{"class": "dog", "count": 1, "color": "red"},
                                          {"class": "computer mouse", "count": 1, "color": "black"}]},
        {"tag": "counting", "include": [{"class": "dog", "count": 2}], "exclude": [{"class": "dog", "count": 3}]},
    ]
    out = [v.correct for v in reward.verdicts([image] * 4, metas)]
    # one colour request per colour clause: its `count` most confident kept detections (the 0.95 dog, not the 0.5 one)
    assert asked == [[[("dog", (4.0, 8.0, 16.0, 24.0))], [],
                      [("dog", (4.0, 8.0, 16.0, 24.0)), ("computer mouse", (0.0, 48.0, 12.0, 64.0))], []]]
    # red dog: yes; dog and mouse: yes; mouse is white, not black: no; counting: the 0.5 dog is below 0.9: one dog
    assert out == [True, True, False, False]


def test_reward_by_name_with_detector_options(tiny_dirs):
    reward = GenEvalReward("mask2former", strict=True, detector_options=dict(
        model_id=tiny_dirs[0], clip_model_id=tiny_dirs[1], device="cpu", scale=(64, 64)))
    images = [noise_image(0), noise_image(1)]
    out = reward(["a photo of a person", "a photo of a dog"], images, tag=["single_object"] * 2,
                 include=[[{"class": "person", "count": 1}], [{"class": "dog", "count": 1}]])
    assert out == [1.0, 0.0]  # every tiny-model detection is a person
    colours = GenEvalReward("mask2former", partial_credit="flow_grpo", detector_options=dict(
        model_id=tiny_dirs[0], clip_model_id=tiny_dirs[1], device="cpu", scale=(64, 64)))
    (score,) = colours(["p"], images[:1], tag=["colors"], include=[[{"class": "person", "count": 1, "color": "red"}]])
    assert score <= 1.0
    with pytest.raises(ValueError, match=r"'include\[0\]\.class' is 'unicorn'; allowed values: \['person', 'bicycle'"):
        reward(["p"], images[:1], tag=["single_object"], include=[[{"class": "unicorn", "count": 1}]])
    with pytest.raises(ValueError, match="threshold 0.2 is below the detector's min_score 0.3"):
        GenEvalReward("mask2former", threshold=0.2, detector_options=dict(model_id=tiny_dirs[0], device="cpu")).verdicts(
            images[:1], [{"tag": "single_object", "include": [{"class": "person", "count": 1}]}])
    with pytest.raises(ValueError, match="detector_options apply to a detector built by name"):
        GenEvalReward(make_detector(tiny_dirs), detector_options={"device": "cpu"})
