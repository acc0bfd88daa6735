"""The pieces around the benchmarks: metric names and spread, the weights fingerprint of the manifest, the progress
bar over prompts, the sample grid, and the docstring examples of the evaluation modules."""

from __future__ import annotations

import doctest
import re

import numpy as np
import pytest
import torch
from PIL import Image

from trl_htgrpo.evaluation import image_grid, parse_metrics, score_metrics
from trl_htgrpo.evaluation.metrics import spread
from trl_htgrpo.evaluation.outputs import weights_sha256


def test_metric_names_are_checked_before_sampling():
    assert parse_metrics("imagereward,hpsv2, pickscore,clipscore,aesthetic") == [
        "imagereward", "hpsv2", "pickscore", "clipscore", "aesthetic"]
    assert parse_metrics(None) == [] and parse_metrics(["clipscore,hpsv2"]) == ["clipscore", "hpsv2"]
    with pytest.raises(ValueError, match=r"--metrics hps: unknown reward; registered: \[.*'clipscore'"):
        parse_metrics("clipscore,hps")
    with pytest.raises(ValueError, match=r"--metrics geneval: GenEval's correctness is the geneval benchmark"):
        parse_metrics("geneval")


def test_spread_by_hand():
    # scores 1, 2, 6 (one failure): mean 3, population std sqrt(((1-3)^2 + (2-3)^2 + (6-3)^2) / 3) = sqrt(14/3)
    s = spread([1.0, None, 2.0, 6.0])
    assert s == pytest.approx({"mean": 3.0, "std": (14 / 3) ** 0.5, "min": 1.0, "max": 6.0, "n": 3, "failed": 1})


def test_score_metrics_equals_the_reward_called_directly(photo_models, tmp_path):
    from trl_htgrpo.rewards.clip_rewards import CLIPScoreReward

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    images[1].save(tmp_path / "1.png")
    prompts = ["a red cat", "a dog", "two dogs"]
    summary, per_image = score_metrics(["clipscore"], prompts, [images[0], tmp_path / "1.png", lambda: images[2]],
                                       {"clipscore": {"model_id": photo_models[1], "device": "cpu"}}, chunk=2, desc=None)
    direct = CLIPScoreReward(photo_models[1], device="cpu", scale=1.0, clamp=False)(prompts, images)
    assert per_image["clipscore"] == pytest.approx([100 * max(c, 0.0) for c in direct], abs=1e-4)
    assert summary["clipscore"]["n"] == 3 and summary["clipscore"]["mean"] == pytest.approx(np.mean(per_image["clipscore"]))


def test_weights_fingerprint_ignores_the_load_dtype_and_sees_a_fine_tune():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32))
    h = weights_sha256(model)
    bf16 = BertModel(model.config)
    bf16.load_state_dict(model.state_dict())
    assert weights_sha256(bf16.to(torch.bfloat16)) == h  # the same files loaded in bfloat16
    with torch.no_grad():  # a merged LoRA update of one matrix: W + B A with small B A
        w = model.encoder.layer[0].attention.self.query.weight
        w += 0.05 * torch.randn(16, 2) @ torch.randn(2, 16)
    assert weights_sha256(model) != h


def test_progress_bar_over_prompts_with_time_left(real_models, metadata_file, tmp_path, capsys):
    from trl_htgrpo.evaluation import load_for_evaluation, read_metadata, sampler_settings
    from trl_htgrpo.evaluation.geneval import write_samples

    loaded = load_for_evaluation(real_models["lumina"], image_size=32, device="cpu")
    records = read_metadata(str(metadata_file))
    capsys.readouterr()
    write_samples(loaded.model, loaded.backbone, records, tmp_path, 1, batch_size=2, desc="GenEval sampling",
                  **sampler_settings(loaded.backbone, steps=2))
    err = capsys.readouterr().err
    assert "GenEval sampling: 100%" in err and "prompt" in err
    assert re.search(r"3/3 \[\d\d:\d\d<\d\d:\d\d", err)  # [elapsed<time left]
    write_samples(loaded.model, loaded.backbone, records, tmp_path, 1, desc="GenEval sampling")  # all there
    assert "3/3" in capsys.readouterr().err


def test_image_grid_keeps_the_shapes_layout_and_labels_scores():
    small = [("a photo of a red square", Image.new("RGB", (48, 48)), True)] * 3
    assert image_grid(small).size == (8 * (48 * 3 + 8), 48 * 3 + 40)  # as before: 8 columns, 3x nearest upscaling
    photos = [("a long DPG-Bench prompt about a cat", Image.new("RGB", (64, 64), "white"), 0.25)] * 2
    grid = image_grid(photos, columns=2, size=96, lines=3)
    assert grid.size == (2 * (96 + 8), 96 + 16 + 36)
    frame = np.asarray(grid)[2, 2]  # the frame's colour: 0.25 of the way from red to green
    assert frame.tolist() == [165, 40, 0]


@pytest.mark.parametrize("module", ["dpg", "geneval", "metrics"])
def test_docstring_examples(module):
    import importlib

    mod = importlib.import_module(f"trl_htgrpo.evaluation.{module}")
    failed, tried = doctest.testmod(mod)
    assert tried > 0 and failed == 0


def _trainer_stand_in(real_models, detector):
    """The tiny Lumina-DiMOO loaded for evaluation with `detector`, and a stand-in for the trainer that
    evaluate_trainer reads: a one-process CPU accelerator, the model and backbone, the recipe's sampler."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    from trl_htgrpo.evaluation import load_for_evaluation, sampler_settings

    loaded = load_for_evaluation(real_models["lumina"], image_size=32, device="cpu")
    loaded.backbone.detector = detector
    settings = sampler_settings(loaded.backbone, steps=2)
    trainer = SimpleNamespace(accelerator=Accelerator(cpu=True), args=SimpleNamespace(ds3_gather_for_generation=True),
                              model=loaded.model, model_wrapped=loaded.model, backbone=loaded.backbone, sampling=settings)
    return trainer, loaded, settings


def test_evaluate_trainer_shows_its_bar_and_matches_evaluate_model(real_models, metadata_file, capsys):
    """The training job's evaluation before / after training, with a one-process accelerator standing in for the
    trainer's: its bar is shown (desc=) and its summary is evaluate_model's."""
    from trl_htgrpo.evaluation import evaluate_model, evaluate_trainer, read_metadata
    from trl_htgrpo.rewards import Detection, register_detector

    register_detector("test-persons", lambda: (lambda image: [Detection("person", (0, 0, 8, 8), 0.9)]))
    trainer, loaded, settings = _trainer_stand_in(real_models, "test-persons")
    records = read_metadata(str(metadata_file))
    capsys.readouterr()
    out = evaluate_trainer(trainer, records, 2, seed=3, desc="evaluation before training")
    assert "evaluation before training" in capsys.readouterr().err
    assert out == evaluate_model(loaded.model, loaded.backbone, records, 2, seed=3, **settings)
    assert out["tags"] == {"colors": 0.0, "single_object": 1.0, "two_object": 0.0} and out["num_images"] == 6


def test_evaluate_trainer_tells_why_its_images_fail_detecting_each_image_once(real_models, metadata_file):
    """failures=True: the same summary, and the failure table of the same images. Every image shows one person at
    0.9: "a person" is correct, "a person and a dog" misses the dog (absent: no dog detected at all), "a red person"
    has the person but not the colour (the test detector names none); one detection per image, none dropped. The
    detector runs once per image (6), not once for the verdicts and again for the table."""
    from trl_htgrpo.evaluation import evaluate_trainer, read_metadata
    from trl_htgrpo.rewards import Detection, register_detector

    calls = []
    register_detector("test-persons-counted",
                      lambda: (lambda image: calls.append(image) or [Detection("person", (0, 0, 8, 8), 0.9)]))
    trainer, _, _ = _trainer_stand_in(real_models, "test-persons-counted")
    records = read_metadata(str(metadata_file))
    plain = evaluate_trainer(trainer, records, 2, seed=3)
    calls.clear()
    out = evaluate_trainer(trainer, records, 2, seed=3, failures=True)
    assert len(calls) == 6
    table = out.pop("failures")
    assert out == plain
    assert list(table) == ["single_object", "two_object", "colors", "all"]
    assert table["single_object"]["correct"] == 1.0
    assert table["two_object"]["missing"] == table["two_object"]["missing_absent"] == 1.0
    assert table["colors"]["color"] == 1.0 and table["colors"]["given_objects"] == 0.0
    assert table["all"]["correct"] == pytest.approx(1 / 3) and table["all"]["given_objects"] == pytest.approx(1 / 2)
    assert table["all"]["detections"] == 1.0 and table["all"]["dropped"] == 0.0


def test_evaluate_trainer_judges_relations_against_their_swapped_records(real_models):
    """failures=True also judges each relation image against the opposite relation: every image shows a person and a
    dog to its right, so "a dog right of a person" is correct (given_objects 1) and "a dog left of a person", its
    swapped record, wrong (given_objects_swapped 0), on both images."""
    from trl_htgrpo.evaluation import evaluate_trainer
    from trl_htgrpo.rewards import Detection, register_detector

    register_detector("test-person-dog", lambda: (lambda image: [Detection("person", (0, 0, 8, 8), 0.9),
                                                                 Detection("dog", (16, 0, 24, 8), 0.9)]))
    trainer, _, _ = _trainer_stand_in(real_models, "test-person-dog")
    record = {"tag": "position", "prompt": "a photo of a dog right of a person", "include": [
        {"class": "person", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    row = evaluate_trainer(trainer, [record], 2, seed=3, failures=True)["failures"]["position"]
    assert row["given_objects"] == row["given_objects_asked"] == 1.0
    assert row["given_objects_swapped"] == 0.0 and row["drawn_swappable"] == 2
