"""DPG-Bench: its inputs, the 2x2 grid its scorer cuts, question dependencies and averaging worked by hand, a run
on tiny MMaDA and Lumina-DiMOO checkpoints, and the BLIP VQA model against transformers' own generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from trl_htgrpo.evaluation import BlipVQA, dpg_summary, format_dpg_summary, read_dpg, read_questions
from trl_htgrpo.evaluation.dpg import DPGQuestion, crop_boxes, image_score, item_result, make_grid, split_grid

from evaluation_helpers import CSV_HEADER, cli, error_of


def test_reads_prompts_and_questions_in_file_order(dpg_inputs):
    items = read_dpg(*dpg_inputs)
    assert [(i.item_id, i.prompt) for i in items] == [("cat0", "a red cat and a blue dog"), ("scene1", "two green dogs")]
    q = items[0].questions
    assert [x.qid for x in q] == [1, 2, 3, 4, 5] and q[4].parents == (1, 3) and q[0].parents == (0,)
    assert (q[4].question, q[4].tuple) == ("Is the cat left of the dog?", "relation - spatial (cat, dog, left of)")
    assert (q[4].category, q[4].l1, items[1].questions[1].category) == ("relation - spatial", "relation", "other - count")


def test_bad_inputs_name_the_line_and_field(dpg_inputs, tmp_path):
    prompts, csv = dpg_inputs
    lines = csv.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines[:3] + [lines[3].replace('"0"', '"1;2"')]) + "\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 4: field 'dependency' is '1;2': give the parent proposition ids"):
        read_questions(bad)
    bad.write_text(CSV_HEADER.replace("dependency,", "") + "\n")
    with pytest.raises(ValueError, match=r"columns \['dependency'\] are missing"):
        read_questions(bad)
    bad.write_text("\n".join(lines[:2] + [lines[2].replace('"1"', '"7"')]) + "\n")
    with pytest.raises(ValueError, match=r"item 'cat0', proposition 2 depends on \[7\], which the item does not have"):
        read_questions(bad)
    (prompts / "cat0.txt").unlink()
    with pytest.raises(ValueError, match=r"items \['cat0'\] have no prompt file <item_id>.txt"):
        read_dpg(prompts, csv)


def test_grid_is_cut_back_by_the_official_crop_boxes():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    grid = make_grid([Image.new("RGB", (16, 16), c) for c in colours])
    assert grid.size == (32, 32)
    # compute_dpg_one_sample's boxes for resolution 16, in its order: image k is cut from box k
    assert crop_boxes(16) == [(0, 0, 16, 16), (16, 0, 32, 16), (0, 16, 16, 32), (16, 16, 32, 32)]
    for k, box in enumerate(crop_boxes(16)):
        assert (np.asarray(grid.crop(box)) == colours[k]).all()
    assert [np.asarray(t)[0, 0].tolist() for t in split_grid(grid)] == [list(c) for c in colours]
    with pytest.raises(ValueError, match="square images of one size"):
        make_grid([Image.new("RGB", (16, 8))] * 4)


def test_dependencies_and_averaging_by_hand(dpg_inputs):
    cat, scene = read_dpg(*dpg_inputs)  # cat: q2 <- q1, q4 <- q3, q5 <- q1, q3; scene: q2, q3 <- q1
    y, n = "yes", "no"
    cat_answers = [[y, y, y, y, y],  # all yes: 5/5 = 1
                   [n, y, y, y, y],  # q1 no -> q2, q5 zeroed: [0, 0, 1, 1, 0] = 0.4
                   [y, n, y, n, y],  # own answers: [1, 0, 1, 0, 1] = 0.6
                   [y, y, n, " Yes", y]]  # q3 no -> q4, q5 zeroed: [1, 1, 0, 0, 0] = 0.4
    r_cat = item_result(cat, cat_answers)
    assert r_cat["image_scores"] == pytest.approx([1.0, 0.4, 0.6, 0.4])
    assert r_cat["score"] == pytest.approx(0.6)  # (1 + 0.4 + 0.6 + 0.4) / 4
    r_scene = item_result(scene, [[n, y, y]] * 4)  # q1 no zeroes both children: 0 on every image
    assert r_scene["score"] == 0.0
    s = dpg_summary([r_cat, r_scene])
    assert s["overall"] == pytest.approx(30.0)  # (0.6 + 0) / 2 * 100
    # categories: the last image's answers before the dependency pass: cat [1, 1, 0, 1, 1], scene [0, 1, 1]
    assert s["l2"] == pytest.approx({"attribute - color": 100.0, "entity - whole": 100 / 3, "other - count": 100.0,
                                     "relation - spatial": 100.0})  # entity - whole: cat q1 1, q3 0, scene q1 0
    assert s["l1"] == pytest.approx({"attribute": 100.0, "entity": 100 / 3, "other": 100.0, "relation": 100.0})
    assert (s["num_prompts"], s["num_questions"]) == (2, 8)
    text = format_dpg_summary(s)
    assert text.startswith("L1 category scores:\n\tattribute: 100.0\n\tentity: 33.3") and text.endswith("DPG-Bench score: 30.0")


def test_dependency_pass_runs_in_file_order_in_place():
    chain = [DPGQuestion(1, "", "entity - whole (a)", (0,)), DPGQuestion(2, "", "attribute - color (a, red)", (1,)),
             DPGQuestion(3, "", "attribute - size (a, big)", (2,))]
    assert image_score(chain, ["no", "yes", "yes"]) == (0.0, [0.0, 0.0, 0.0])  # 3's parent 2 was zeroed before it
    # a child listed before its parent reads the parent's answer, not its later zeroing (the official loop's order)
    ahead = [DPGQuestion(2, "", "attribute - color (a, red)", (1,)), DPGQuestion(1, "", "entity - whole (a)", (3,)),
             DPGQuestion(3, "", "entity - whole (b)", (0,))]
    assert image_score(ahead, ["yes", "yes", "no"]) == (pytest.approx(1 / 3), [1.0, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------- runs
NO = {"Is there a dog?", "Are there dogs?"}


def stand_in_vqa(images, questions):
    """Answers no to the two questions in NO, yes to every other."""
    return [["no" if q in NO else "yes" for q in questions] for _ in images]


def test_run_dpg_lumina_layout_scores_and_resumes(real_models, dpg_inputs, tmp_path):
    from trl_htgrpo.evaluation import load_for_evaluation, run_dpg, run_manifest, sampler_settings

    items = read_dpg(*dpg_inputs)
    loaded = load_for_evaluation(real_models["lumina"], image_size=32, device="cpu")
    settings = sampler_settings(loaded.backbone, steps=2)
    manifest = run_manifest("dpg", loaded, settings, 0, 4)
    out = tmp_path / "dpg"
    res = run_dpg(loaded.model, loaded.backbone, items, out, stand_in_vqa, manifest=manifest, batch_size=3,
                  progress=False, **settings)
    assert sorted(p.name for p in out.iterdir()) == ["dpg_answers.jsonl", "images", "manifest.json"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["cat0.png", "scene1.png"]
    for item in items:  # the official scorer's lookup: basename.split('.')[0] is the item id
        path = out / "images" / f"{item.item_id}.png"
        assert path.name.split(".")[0] == item.item_id and Image.open(path).size == (64, 64)
    # cat: q3 no zeroes q4, q5: [1, 1, 0, 0, 0] = 0.4 on every image; scene: q1 no zeroes all: 0 -> 20.0
    assert res["overall"] == pytest.approx(20.0) and res["resolution"] == 32 and res["images_written"] == 8
    assert res["l2"]["entity - whole"] == pytest.approx(100 / 3) and res["l1"]["relation"] == 100.0
    answers = [json.loads(line) for line in (out / "dpg_answers.jsonl").read_text().splitlines()]
    assert answers[0]["item_id"] == "cat0" and answers[0]["image_scores"] == pytest.approx([0.4] * 4)
    assert answers[0]["answers"][0] == ["yes", "yes", "no", "yes", "yes"]
    # the 4 images of a prompt are 4 draws (image_seed(seed, 4 j + k)), identical when drawn one at a time
    grid = Image.open(out / "images" / "cat0.png").copy()
    tiles = split_grid(grid)
    assert not np.array_equal(np.asarray(tiles[0]), np.asarray(tiles[1]))
    stamp = (out / "images" / "scene1.png").stat().st_mtime_ns
    (out / "images" / "cat0.png").unlink()
    again = run_dpg(loaded.model, loaded.backbone, items, out, stand_in_vqa, manifest=manifest, batch_size=1,
                    progress=False, **settings)
    assert again["images_written"] == 4 and again["resumed"] is True and again["overall"] == res["overall"]
    assert np.array_equal(np.asarray(Image.open(out / "images" / "cat0.png")), np.asarray(grid))
    assert (out / "images" / "scene1.png").stat().st_mtime_ns == stamp


def test_dpg_cli_mmada_with_a_tiny_blip(real_models, blip_dirs, dpg_inputs, tmp_path, capsys):
    prompts, csv = dpg_inputs
    out = tmp_path / "dpg"
    args = ["--benchmark", "dpg", "--prompts", str(prompts), "--questions", str(csv), "--model_name_or_path",
            real_models["mmada"], "--vq_model_name_or_path", real_models["magvit"], "--steps", "2", "--output_dir",
            str(out), "--device", "cpu", "--vqa_model", blip_dirs["yes"], "--no_progress",
            "--vqa_options", json.dumps({"device": "cpu", "max_new_tokens": 1})]
    res = cli().main(args)
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["dpg_answers.jsonl", "images", "manifest.json", "results.json",
                                                     "samples.png"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["cat0.png", "scene1.png"]
    saved = json.loads((out / "results.json").read_text())
    # the biased BLIP answers "yes" to everything: every question counts, 100 everywhere
    assert saved["overall"] == 100.0 and set(saved["l1"].values()) == {100.0} and saved["vqa_model"] == blip_dirs["yes"]
    assert saved["resolution"] == 32 and saved["num_questions"] == 8 and res["images_written"] == 8
    assert f"official scorer (mPLUG-large): bash dpg_bench/dist_eval.sh {out / 'images'} 32" in printed
    assert "DPG-Bench score: 100.0" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["benchmark"] == "dpg" and manifest["identity"]["images_per_prompt"] == 4
    assert cli().main(args)["images_written"] == 0
    with pytest.raises(SystemExit):  # other seeds, other images: refused
        cli().main(args + ["--seed", "1"])
    assert "seed: 0 there, 1 now" in error_of(capsys)


def test_dpg_cli_refuses_other_image_counts(dpg_inputs, capsys):
    prompts, csv = dpg_inputs
    with pytest.raises(SystemExit):
        cli().main(["--benchmark", "dpg", "--prompts", str(prompts), "--questions", str(csv),
                    "--model_name_or_path", "x", "--images_per_prompt", "2"])
    assert "draws 4 images per prompt (its 2x2 grid)" in error_of(capsys)
    with pytest.raises(SystemExit):
        cli().main(["--benchmark", "dpg", "--prompts", str(prompts), "--model_name_or_path", "x"])
    assert "needs --prompts (dpg_bench/prompts/) and --questions" in error_of(capsys)


def test_blip_vqa_equals_transformers_generate(blip_dirs):
    from transformers import BlipForQuestionAnswering, BlipProcessor

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    questions = ["Is there a cat?", "Is the dog blue?", "Are there two green dogs?", "Is the cat red?"]
    vqa = BlipVQA(blip_dirs["random"], device="cpu", max_new_tokens=3, batch_size=5)
    answers = vqa(images, questions)
    model = BlipForQuestionAnswering.from_pretrained(blip_dirs["random"]).eval()
    proc = BlipProcessor.from_pretrained(blip_dirs["random"])
    expect = [[proc.decode(model.generate(**proc(images=im, text=q, return_tensors="pt"), max_new_tokens=3)[0][1:],
                           skip_special_tokens=True).strip() for q in questions] for im in images]
    assert answers == expect
    assert len({a for row in answers for a in row}) > 2  # the random model's answers vary with image and question
    assert BlipVQA(blip_dirs["random"], device="cpu", max_new_tokens=3, batch_size=1)(images, questions) == answers
    assert BlipVQA(blip_dirs["yes"], device="cpu", max_new_tokens=1)(images[:1], questions) == [["yes"] * 4]
