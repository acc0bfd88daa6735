"""GenEval through examples/evaluate.py on tiny MMaDA and Lumina-DiMOO checkpoints in their published layouts: the
folder is GenEval's, its summary is summary_scores.py's arithmetic, a rerun draws nothing twice, bad input fails
with a message naming what to fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trl_htgrpo.evaluation import format_geneval_summary, geneval_summary, read_metadata
from trl_htgrpo.rewards.geneval_rules import summarize

from evaluation_helpers import METADATA, cli, error_of


def geneval_args(meta, model_args, out, photo, *extra):
    m2f, clip = photo
    det = {"model_id": m2f, "clip_model_id": clip, "device": "cpu", "scale": [64, 64]}
    return ["--benchmark", "geneval", "--metadata", str(meta), *model_args, "--images_per_prompt", "2",
            "--output_dir", str(out), "--device", "cpu", "--detector_options", json.dumps(det), "--no_progress", *extra]


def official_listing(imagedir):
    """What GenEval's evaluate_images.py main() (lines 263-275) reads: (metadata, image path) per image."""
    found = []
    for sub in sorted(Path(imagedir).iterdir()):
        if not sub.is_dir() or not sub.name.isdigit():
            continue
        with open(sub / "metadata.jsonl") as fp:
            metadata = json.load(fp)
        for name in sorted((sub / "samples").iterdir()):
            if name.is_file() and re.match(r"\d+\.png", name.name):
                found.append((metadata, name))
    return found


def summary_scores_like_geneval(path):
    """summary_scores.py's arithmetic (lines 22-45) on a results.jsonl, with pandas as it does."""
    import pandas as pd

    df = pd.read_json(path, orient="records", lines=True)
    tags = {tag: task_df["correct"].mean() for tag, task_df in df.groupby("tag", sort=False)}
    return {"num_images": len(df), "num_prompts": len(df.groupby("metadata")), "correct_images": df["correct"].mean(),
            "correct_prompts": df.groupby("metadata")["correct"].any().mean(), "tags": tags,
            "overall": float(np.mean(list(tags.values())))}


# ---------------------------------------------------------------------------------------------- arithmetic
def test_summary_arithmetic_by_hand():
    # prompt A (counting) images: yes, no, no; prompt B (counting): no, no, no; prompt C (colors): yes, yes, no
    rows = ([{"tag": "counting", "correct": c, "metadata": "A"} for c in (True, False, False)]
            + [{"tag": "counting", "correct": False, "metadata": "B"}] * 3
            + [{"tag": "colors", "correct": c, "metadata": "C"} for c in (True, True, False)])
    s = geneval_summary(rows)
    # counting 1/6, colors 2/3; overall the unweighted mean (1/6 + 2/3) / 2 = 5/12 (the image mean would be 3/9)
    assert s["tags"] == pytest.approx({"counting": 1 / 6, "colors": 2 / 3}) and list(s["tags"]) == ["counting", "colors"]
    assert s["overall"] == pytest.approx(5 / 12)
    assert s["correct_images"] == pytest.approx(3 / 9)  # 3 of 9 images
    assert s["correct_prompts"] == pytest.approx(2 / 3)  # A and C have a correct image, B none
    assert (s["num_images"], s["num_prompts"], s["tag_counts"]) == (9, 3, {"counting": [1, 6], "colors": [2, 3]})
    old = summarize([r["tag"] for r in rows], [r["correct"] for r in rows])  # the rule engine's summary agrees
    assert old["overall"] == pytest.approx(s["overall"]) and old["tags"] == pytest.approx(s["tags"])
    text = format_geneval_summary(s)
    assert "% correct images: 33.33%\n% correct prompts: 66.67%" in text
    assert "counting         = 16.67% (1 / 6)\ncolors           = 66.67% (2 / 3)" in text
    assert text.endswith("Overall score (avg. over tasks): 0.41667")


def test_metadata_line_missing_a_field_names_line_and_field(tmp_path, capsys):
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps(METADATA[0]) + "\n" + json.dumps({"tag": "colors", "prompt": "a red dog"}) + "\n")
    with pytest.raises(ValueError, match=r"meta.jsonl, line 2: field 'include' is missing"):
        read_metadata(str(path))
    with pytest.raises(SystemExit) as e:
        cli().main(["--benchmark", "geneval", "--metadata", str(path), "--model_name_or_path", "x",
                    "--output_dir", str(tmp_path / "o")])
    assert e.value.code == 2 and "line 2: field 'include' is missing" in error_of(capsys)


# ---------------------------------------------------------------------------------------------- the real layouts
def test_geneval_mmada_layout_summary_resume_and_refusals(real_models, photo_models, metadata_file, tmp_path, capsys):
    evaluate = cli()
    out = tmp_path / "geneval"
    mmada = ["--model_name_or_path", real_models["mmada"], "--vq_model_name_or_path", real_models["magvit"]]
    res = evaluate.main(geneval_args(metadata_file, mmada, out, photo_models, "--steps", "3", "--batch_size", "4",
                                     "--metrics", "clipscore,pickscore", "--metric_options", json.dumps(
                                         {"clipscore": {"model_id": photo_models[1], "device": "cpu"},
                                          "pickscore": {"model_id": photo_models[1], "processor_id": photo_models[1],
                                                        "device": "cpu"}})))
    printed = capsys.readouterr().out

    # exactly GenEval's layout, plus our own files at the top (GenEval's scorer skips them)
    assert sorted(p.name for p in out.iterdir()) == ["00000", "00001", "00002", "manifest.json", "metrics.jsonl",
                                                     "results.json", "results.jsonl", "samples.png"]
    for i, record in enumerate(METADATA):
        folder = out / f"{i:05d}"
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.jsonl", "samples"]
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png"]
        assert (folder / "metadata.jsonl").read_text() == json.dumps(record)  # json.dump of the line's record
        assert Image.open(folder / "samples" / "0000.png").size == (32, 32)
    listing = official_listing(out)
    assert [m for m, _ in listing] == [r for r in METADATA for _ in range(2)]

    # the summary: summary_scores.py's arithmetic on our results.jsonl, printed in its format
    saved = json.loads((out / "results.json").read_text())
    theirs = summary_scores_like_geneval(out / "results.jsonl")
    for key in ("num_images", "num_prompts", "correct_images", "correct_prompts", "overall"):
        assert saved[key] == pytest.approx(theirs[key]), key
    assert saved["tags"] == pytest.approx(theirs["tags"]) and list(saved["tags"]) == list(theirs["tags"])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["filename"] for r in rows] == [str(p) for _, p in listing]
    assert set(rows[0]) == {"filename", "tag", "prompt", "correct", "reason", "metadata"}
    # the tiny detector sees only persons: a person yes, a person and a dog no
    assert [r["correct"] for r in rows[:4]] == [True, True, False, False] and "expected 1 dog" in rows[2]["reason"]
    assert f"Overall score (avg. over tasks): {saved['overall']:.5f}" in printed and "Task breakdown" in printed
    assert "official scorer: python evaluation/evaluate_images.py" in printed

    # sampler settings: the flag where given, else MMaDA's published ones; recorded in the manifest
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["sampler"] == {"sampler": "mmada", "steps": 3, "guidance_scale": 3.5,
                                               "temperature": 1.0, "reveal_noise": 1.0, "schedule": "cosine"}
    assert manifest["identity"]["seed"] == 0 and manifest["backbone"] == "mmada" and saved["resumed"] is False

    # metrics: mean and spread per metric, per image in metrics.jsonl
    per_image = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(per_image) == 6 and per_image[0]["prompt"] == "a photo of a person"
    for name in ("clipscore", "pickscore"):
        scores = np.array([p[name] for p in per_image])
        assert saved["metrics"][name] == pytest.approx({"mean": scores.mean(), "std": scores.std(), "min": scores.min(),
                                                        "max": scores.max(), "n": 6, "failed": 0})
    assert len({round(p["pickscore"], 6) for p in per_image}) > 1  # the images differ
    assert Image.open(out / "samples.png").size[0] > 200

    # resume: nothing drawn or written twice (no file touched), the same summary
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*.png") if p.name != "samples.png"}
    again = evaluate.main(geneval_args(metadata_file, mmada, out, photo_models, "--steps", "3", "--batch_size", "4"))
    assert again["images_written"] == 0 and again["resumed"] is True and again["overall"] == res["overall"]
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in stamps} == stamps

    # a lost image is drawn again, alone (batch of 1 instead of 4), and comes out identical: seeds are per image
    lost = out / "00001" / "samples" / "0001.png"
    before = np.asarray(Image.open(lost))
    lost.unlink()
    (out / "00002" / "samples" / ".0000.png.tmp").write_bytes(b"half an image")  # an interrupted write
    third = evaluate.main(geneval_args(metadata_file, mmada, out, photo_models, "--steps", "3", "--batch_size", "1"))
    assert third["images_written"] == 1 and np.array_equal(np.asarray(Image.open(lost)), before)
    assert not list(out.rglob("*.tmp"))
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in stamps if p != lost} == {
        p: s for p, s in stamps.items() if p != lost}

    # other sampler settings or another model: refused, naming what differs and --overwrite
    with pytest.raises(SystemExit):
        evaluate.main(geneval_args(metadata_file, mmada, out, photo_models, "--steps", "4"))
    err = error_of(capsys)
    assert "holds images of another run" in err and "sampler: {" in err and "'steps': 3" in err and "--overwrite" in err
    lumina = ["--model_name_or_path", real_models["lumina"], "--image_size", "32"]
    with pytest.raises(SystemExit):
        evaluate.main(geneval_args(metadata_file, lumina, out, photo_models))
    err = error_of(capsys)
    assert "weights_sha256" in err and "config_sha256" in err and "--overwrite" in err

    # --overwrite replaces them: Lumina-DiMOO with its published sampler settings (64 steps, guidance 4.0)
    res = evaluate.main(geneval_args(metadata_file, lumina, out, photo_models, "--overwrite"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["sampler"]["sampler"] == "lumina_dimoo" and manifest["backbone"] == "lumina_dimoo"
    assert (manifest["identity"]["sampler"]["steps"], manifest["identity"]["sampler"]["guidance_scale"]) == (64, 4.0)
    assert res["images_written"] == 6 and not (out / "metrics.jsonl").exists()
    assert [m for m, _ in official_listing(out)] == [r for r in METADATA for _ in range(2)]


def test_images_equal_the_in_memory_evaluation(real_models, metadata_file, tmp_path):
    """run_geneval's files and evaluate_model's images are the same draws (same per-image seeds): the same image
    tokens (the tiny decoder maps any tokens to nearly the same pixels, so pixels alone would not tell draws
    apart) and the same pixels."""
    from trl_htgrpo.evaluation import evaluate_model, load_for_evaluation, run_geneval, run_manifest, sampler_settings
    from trl_htgrpo.rewards import Detection, GenEvalReward

    loaded = load_for_evaluation(real_models["lumina"], image_size=32, device="cpu")
    settings = sampler_settings(loaded.backbone, steps=2)
    reward = GenEvalReward(lambda image: [Detection("person", (0, 0, 8, 8), 0.9)], strict=True)
    records = read_metadata(str(metadata_file))[:2]
    decode, drawn = loaded.backbone.decode_images, []
    loaded.backbone.decode_images = lambda codes: drawn.append(codes.clone()) or decode(codes)  # (B, N) per batch
    mem = evaluate_model(loaded.model, loaded.backbone, records, 2, batch_size=3, seed=5, reward=reward,
                         keep_images=4, **settings)
    mem_codes, drawn[:] = torch.cat(drawn), []
    res = run_geneval(loaded.model, loaded.backbone, records, tmp_path / "g", images_per_prompt=2, seed=5, batch_size=1,
                      reward=reward, progress=False, manifest=run_manifest("geneval", loaded, settings, 5, 2), **settings)
    files = sorted((tmp_path / "g").glob("0000*/samples/*.png"))
    assert len(files) == 4 and mem_codes.shape[0] == 4
    assert torch.equal(torch.cat(drawn), mem_codes)
    for (_, image, _), path in zip(mem["samples"], files):
        # the same tokens; the VQ decoder's float sums differ with the batch size (3 against 1), which can
        # round a pixel one level apart (seen with diffusers 0.42.1): another draw would differ everywhere
        diff = np.abs(np.asarray(image).astype(int) - np.asarray(Image.open(path)).astype(int))
        assert diff.max() <= 1, diff.max()
    assert res["tags"] == mem["tags"] == {"single_object": 1.0, "two_object": 0.0}


def test_a_model_without_decoder_names_the_flag(real_models, metadata_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli().main(["--benchmark", "geneval", "--metadata", str(metadata_file), "--model_name_or_path",
                    real_models["mmada"], "--output_dir", str(tmp_path / "o"), "--device", "cpu"])
    err = error_of(capsys)
    assert e.value.code == 2 and "MMaDA checkpoints carry no VQ model: pass --vq_model_name_or_path" in err


def test_a_folder_of_unknown_images_is_refused(real_models, photo_models, metadata_file, tmp_path, capsys):
    out = tmp_path / "geneval"
    (out / "00000" / "samples").mkdir(parents=True)
    (out / "00000" / "samples" / "0000.png").write_bytes(b"someone else's")
    (out / "notes.txt").write_text("keep me")
    lumina = ["--model_name_or_path", real_models["lumina"], "--image_size", "32"]
    with pytest.raises(SystemExit):
        cli().main(geneval_args(metadata_file, lumina, out, photo_models, "--steps", "2", "--max_prompts", "1"))
    assert "holds files but no manifest.json" in error_of(capsys) and (out / "00000" / "samples" / "0000.png").exists()
    res = cli().main(geneval_args(metadata_file, lumina, out, photo_models, "--steps", "2", "--max_prompts", "1",
                                  "--overwrite"))
    assert res["images_written"] == 2 and (out / "notes.txt").read_text() == "keep me"  # only our files are deleted
    assert Image.open(out / "00000" / "samples" / "0000.png").size == (32, 32)
