"""Smoke tests: every example and benchmark script runs for a few steps and writes what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def test_pretrain_script_writes_a_loadable_model(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    import trl_htgrpo.toy  # noqa: F401  (the shapes plug-in registers its model type with the Auto classes)

    log = run("examples/pretrain_shapes.py", "--steps", "2", "--batch_size", "4", "--log_every", "1",
              "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--output_dir", str(tmp_path))
    assert "step=2 loss=" in log
    AutoModel.from_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("a photo of a red square")["input_ids"]
    hist = json.loads((tmp_path / "pretrain_log.json").read_text())["history"]
    assert [h["step"] for h in hist] == [1, 2]


def test_evaluate_script_on_the_bundled_model(tmp_path):
    log = run("examples/evaluate.py", "--max_prompts", "6", "--images_per_prompt", "1", "--output_dir", str(tmp_path))
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["tags"]) == {"single_object"} and 0.0 <= res["overall"] <= 1.0  # the first 6 held-out prompts
    assert res["num_images"] == 6 and "overall" in log
    assert (tmp_path / "samples.png").stat().st_size > 1000


def test_main_job_smoke_run(tmp_path):
    run("examples/train_htgrpo.py", "--max_steps", "2", "--per_device_train_batch_size", "8",
        "--gradient_accumulation_steps", "1", "--num_generations", "4", "--diffusion_steps", "4",
        "--eval_max_prompts", "6", "--eval_images_per_prompt", "1", "--save_strategy", "no",
        "--output_dir", str(tmp_path))
    res = json.loads((tmp_path / "heldout_before_after.json").read_text())
    assert {"before", "after", "split", "images_per_prompt"} <= set(res) and res["split"] == "heldout"
    # the figures name what they were measured on: CPU, its instruction set, library versions (trl_htgrpo/machine.py)
    assert res["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert res["machine"]["libraries"]["torch"] == torch.__version__ and "trl" in res["machine"]["libraries"]
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "README.md").exists()


def test_compare_estimators_quick(tmp_path):
    log = run("benchmarks/compare_estimators.py", "--quick", "--runs", "ht,maskgrpo", "--diagnose", "--failures",
              "--output_dir", str(tmp_path), "--set", '{"beta": 0.04}', "--reward_options",
              '{"partial_credit": "flow_grpo"}')
    res = json.loads((tmp_path / "estimators.json").read_text())
    runs = {r["estimator"] for r in res["runs"]}
    assert runs == {"ht", "maskgrpo"}  # every estimator trains in tests/test_trainer.py; here the benchmark's plumbing
    diag = res["runs"][0]
    assert {"masked_entropy", "kl_to_base"} <= set(diag["curve"][-1]) and diag["curve"][0]["kl_to_base"] == 0.0
    assert diag["composition"] and 0.0 <= diag["composition"][0]["background_in_structure"] <= 1.0
    assert diag["log"] and "reward" in diag["log"][0]
    for point in diag["curve"]:  # --failures: why the same images fail; per tag its correct share is the tag's score
        assert {t: row["correct"] for t, row in point["failures"].items() if t != "all"} == pytest.approx(point["tags"])
    assert "rewards/geneval_flow_grpo/mean" in diag["log"][0]  # --reward_options built the reward TRL logged
    for r in res["runs"]:
        assert 0.0 <= r["overall"] <= 1.0 and r["rollouts"] == 1 and r["wall_seconds"] > 0
        assert r["old_ref_forwards_per_rollout_batch"] >= 1.0  # K = 3 > 1: old log-probs are needed
    ht = next(r for r in res["runs"] if r["estimator"] == "ht")
    mg = next(r for r in res["runs"] if r["estimator"] == "maskgrpo")
    assert ht["old_forwards_per_rollout_batch"] == 1.0 and mg["old_forwards_per_rollout_batch"] == 3.0
    # --set reached every run: beta > 0 adds reference passes (one per context)
    assert ht["ref_forwards_per_rollout_batch"] == 1.0 and mg["ref_forwards_per_rollout_batch"] == 3.0
    # every curve starts at the same base-model evaluation (evaluated once, shared by the runs)
    assert {r["curve"][0]["rollouts"] for r in res["runs"]} == {0}
    assert len({r["curve"][0]["overall"] for r in res["runs"]}) == 1
    assert (tmp_path / "estimators.png").stat().st_size > 1000 and "rank" in log
    assert res["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and res["machine"]["cpu"]
    assert mg["policy_forwards_per_update"] == 1.0 and mg["updates_per_rollout_batch"] == 3.0
    assert mg["old_tokens_per_rollout_batch"] > 0
    assert "[curve] seed 0 rollouts 1: overall" in log  # each evaluation is printed as it happens
    # the diagnosis plot reads what --diagnose wrote; two files: runs are told apart by their folder
    png = tmp_path / "diagnosis.png"
    run("benchmarks/plot_diagnosis.py", str(tmp_path / "estimators.json"), str(tmp_path / "estimators.json"),
        "--output", str(png))
    assert png.stat().st_size > 1000


def _load_script(name, path, monkeypatch):
    """Import a script as a module (registered in sys.modules for the test only: its dataclasses need it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_compare_estimators_checks_every_run_before_training(tmp_path, monkeypatch):
    bench = _load_script("compare_estimators", ROOT / "benchmarks" / "compare_estimators.py", monkeypatch)
    with pytest.raises(SystemExit, match=r"(?s)run unigrpo rejects --set .*structure_weight=4.0 only acts with credit='two_level'"):
        bench.main(["--set", '{"structure_weight": 4.0}', "--output_dir", str(tmp_path)])
    assert not (tmp_path / "estimators.json").exists()  # nothing trained
    with pytest.raises(SystemExit, match=r"--reward geneval --reward_options .*partial_credit='fuzzy' is not a known rule"):
        bench.main(["--reward_options", '{"partial_credit": "fuzzy"}', "--output_dir", str(tmp_path)])
    assert not (tmp_path / "estimators.json").exists()


def _fake_run(estimator, seed, overall, every):
    curve = [{"rollouts": r, "train_seconds": 10.0 * r, "overall": 0.33 + (overall - 0.33) * r / 48} for r in
             range(0, 49, every)]
    return {"estimator": estimator, "ablation": "", "seed": seed, "overall": overall, "curve": curve,
            "wall_seconds": 100.0, "old_ref_forwards_per_rollout_batch": 1.0}


def test_compare_estimators_merges_runs_made_in_separate_processes(tmp_path, monkeypatch, capsys):
    """Seed 1 evaluated every 12 in one file, seed 2 every 24 in another: one table over both seeds (HT-GRPO
    0.44 / 0.50: mean 0.470, se = sd 0.0424 / sqrt 2 = 0.030, gain +0.140; d1 0.40 / 0.46 behind it on 2/2) and a
    mean curve at the batches both have (at 24: (0.33 + 0.11 / 2 + 0.33 + 0.17 / 2) / 2 = 0.40); files of another
    recipe, or holding the same run twice, are refused."""
    bench = _load_script("compare_estimators", ROOT / "benchmarks" / "compare_estimators.py", monkeypatch)
    config = {"rollouts": 48, "eval_split": "heldout", "eval_images_per_prompt": 2, "eval_max_prompts": None,
              "model_name_or_path": "shapes-mdm", "reward": "geneval", "recipe": {"learning_rate": 3e-5}}
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({"config": config, "machine": {"cpu": "CPU A"},
                             "runs": [_fake_run("ht", 1, 0.44, 12), _fake_run("d1", 1, 0.40, 12)]}))
    b.write_text(json.dumps({"config": config, "runs": [_fake_run("ht", 2, 0.50, 24), _fake_run("d1", 2, 0.46, 24)]}))
    bench.main(["--merge", str(a), str(b), "--output_dir", str(tmp_path / "both")])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:3]]
    assert rows[0][:9] == ["1", "ht", "0.470", "0.030", "0.030", "2", "+0.140", "2", "-"]
    assert rows[1][:9] == ["2", "d1", "0.430", "0.030", "0.030", "2", "+0.100", "2", "2/2"]
    merged = json.loads((tmp_path / "both" / "estimators.json").read_text())
    assert [(r["estimator"], r["seed"]) for r in merged["runs"]] == [("d1", 1), ("ht", 1), ("d1", 2), ("ht", 2)]
    assert merged["machines"] == [{"cpu": "CPU A"}, None]  # each file's machine kept (b.json names none)
    assert (tmp_path / "both" / "estimators.png").stat().st_size > 1000
    xs, _, ys = bench.mean_curve([r for r in merged["runs"] if r["estimator"] == "ht"])
    assert xs == [0, 24, 48] and ys == pytest.approx([0.33, 0.4, 0.47])  # the batches both seeds evaluated
    c.write_text(json.dumps({"config": {**config, "recipe": {"learning_rate": 1e-4}}, "runs": []}))
    with pytest.raises(SystemExit, match=r"c\.json has recipe=\{'learning_rate': 0\.0001\} but .*a\.json has"):
        bench.main(["--merge", str(a), str(c), "--output_dir", str(tmp_path / "no")])
    with pytest.raises(SystemExit, match=r"a\.json both hold ht seed 1; drop one"):
        bench.main(["--merge", str(a), str(a), "--output_dir", str(tmp_path / "no")])
    # a file from before --reward_options ran with none: it merges with '{}' and not with another reward option
    d, e = tmp_path / "d.json", tmp_path / "e.json"
    d.write_text(json.dumps({"config": {**config, "reward_options": "{}"}, "runs": [_fake_run("ht", 3, 0.45, 24)]}))
    bench.main(["--merge", str(a), str(d), "--output_dir", str(tmp_path / "old_and_new")])
    e.write_text(json.dumps({"config": {**config, "reward_options": '{"threshold": 0.4}'}, "runs": []}))
    with pytest.raises(SystemExit, match=r"e\.json has reward_options='\{\"threshold\": 0\.4\}' but .*a\.json has '\{\}'"):
        bench.main(["--merge", str(a), str(e), "--output_dir", str(tmp_path / "no")])


def test_compare_estimators_curve_evaluates_every_n_and_the_last_batch(monkeypatch):
    """Training points at rollout batch 24 and at the last one (30), which 24 does not divide."""
    from types import SimpleNamespace

    bench = _load_script("compare_estimators", ROOT / "benchmarks" / "compare_estimators.py", monkeypatch)
    monkeypatch.setattr(bench, "evaluate_trainer", lambda *a, **k: {"overall": 0.5, "tags": {}})
    curve = bench._Curve(records=[], every=24, images_per_prompt=1, seed=0)
    curve.t0 = 0.0
    args = SimpleNamespace(num_iterations=3)
    for step in range(1, 91):  # 30 rollout batches at K = 3
        curve.on_step_end(args, SimpleNamespace(global_step=step, max_steps=90), None)
    assert [p["rollouts"] for p in curve.points] == [24, 30]


@pytest.mark.parametrize("family", ["mmada", "lumina_dimoo"])
def test_main_job_script_trains_each_published_layout(family, tmp_path):
    """The same command with --model_name_or_path of a checkpoint in MMaDA's or Lumina-DiMOO's published layout
    (tiny random weights, tests/real_layouts.py): 2 HT-GRPO steps with LoRA on the block projections, bf16 weights,
    the family's published sampler, decoded images rewarded, a saved adapter and model card."""
    sys.path.insert(0, str(ROOT / "tests"))
    from real_layouts import save_tiny_lumina, save_tiny_magvitv2, save_tiny_mmada

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["a red cat", "two dog", "a blue dog", "the cat"]))
    if family == "mmada":
        ckpt = save_tiny_mmada(tmp_path / "mmada")
        extra = ["--vq_model_name_or_path", str(save_tiny_magvitv2(tmp_path / "magvit"))]
    else:
        ckpt, extra = save_tiny_lumina(tmp_path / "lumina"), ["--image_size", "32"]
    out = tmp_path / "out"
    log = run("examples/train_htgrpo.py", "--model_name_or_path", str(ckpt), *extra, "--dataset_name", str(prompts),
              "--reward_funcs", "compressibility", "incompressibility", "--reward_weights", "1.0", "0.5",
              "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "4",
              "--diffusion_steps", "3", "--dtype", "bfloat16", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
              "--lora_target_modules", "all-linear", "--logging_steps", "1", "--output_dir", str(out))
    assert "no --eval_metadata: skipping the evaluation" in log and "will be ignored" not in log
    history = json.loads(sorted(out.glob("checkpoint-*/trainer_state.json"))[-1].read_text())["log_history"]
    first = next(h for h in history if "reward" in h)
    assert {"rewards/compressibility/mean", "rewards/incompressibility/mean"} <= set(first)
    assert (out / "adapter_model.safetensors").exists() and "HT-GRPO" in (out / "README.md").read_text()
    assert f"| sampler `sampler` | `{family}` |" in (out / "README.md").read_text()  # the family's published loop


def test_main_job_defaults_are_the_recipe_and_flags_override_them(tmp_path, monkeypatch):
    """No arguments: the shapes recipe, MaskGRPO's optimiser included (lr 3e-5, clip 0.2, beta2 0.99, wd 0.1,
    48 rollout batches x K = 3); a flag wins; any other model gets TRL's optimiser defaults."""
    script = _load_script("train_htgrpo", ROOT / "examples" / "train_htgrpo.py", monkeypatch)
    args = script.make_parser([]).parse_args_and_config([])[1]
    got = (args.learning_rate, args.max_grad_norm, args.adam_beta2, args.weight_decay, args.max_steps)
    assert got == (3e-5, 0.2, 0.99, 0.1, 144)
    flagged = script.make_parser(["--max_grad_norm", "1.0"]).parse_args_and_config(["--max_grad_norm", "1.0"])[1]
    assert (flagged.max_grad_norm, flagged.adam_beta2) == (1.0, 0.99)
    other = ["--model_name_or_path", str(tmp_path / "some-llada"), "--output_dir", str(tmp_path)]
    plain = script.make_parser(other).parse_args_and_config(other)[1]
    assert (plain.max_grad_norm, plain.adam_beta2, plain.weight_decay) == (1.0, 0.999, 0.0)


def test_fixed_prompts_quick(tmp_path):
    log = run("benchmarks/fixed_prompts.py", "--quick", "--runs", "ht", "--num_prompts", "4", "--output_dir", str(tmp_path))
    res = json.loads((tmp_path / "fixed_prompts.json").read_text())
    assert [r["estimator"] for r in res] == ["ht"] and len(res[0]["prompts"]) == 4 and len(res[0]["reward"]) == 1
    assert 0.0 <= res[0]["reward"][0] <= 1.0 and "ht: reward per rollout batch" in log


def test_fixed_prompts_quarters(monkeypatch):
    script = _load_script("fixed_prompts", ROOT / "benchmarks" / "fixed_prompts.py", monkeypatch)
    assert script.quarters([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == [0.5, 2.5, 4.5, 7.0]  # last takes the rest
    assert script.quarters([1.0, 3.0]) == [1.0, 3.0]


def test_headroom_counts_a_prompt_once_any_of_its_first_k_images_is_correct_and_averages_the_tags(monkeypatch):
    """Three counting prompts of 4 images, correct at image 2 / at image 4 / never: accuracy 2/12, pass@1 0,
    pass@2 1/3, pass@4 2/3; one colors prompt, all 4 correct: 1 throughout; overall = mean of the two tags."""
    bench = _load_script("headroom", ROOT / "benchmarks" / "headroom.py", monkeypatch)
    rows = [[False, True, False, False], [False, False, False, True], [False] * 4, [True] * 4]
    table = bench.headroom(["counting"] * 3 + ["colors"], rows, [1, 2, 4])
    assert table["counting"] == pytest.approx({"accuracy": 2 / 12, "pass@1": 0.0, "pass@2": 1 / 3, "pass@4": 2 / 3})
    assert table["colors"] == {"accuracy": 1.0, "pass@1": 1.0, "pass@2": 1.0, "pass@4": 1.0}
    assert table["overall"] == pytest.approx({"accuracy": 7 / 12, "pass@1": 0.5, "pass@2": 2 / 3, "pass@4": 5 / 6})


def test_failure_modes_runs_on_the_base_model_and_writes_its_table(monkeypatch, tmp_path):
    bench = _load_script("failure_modes", ROOT / "benchmarks" / "failure_modes.py", monkeypatch)
    out = tmp_path / "failures.json"
    table = bench.main(["--max_prompts", "6", "--images_per_prompt", "2", "--output", str(out)])
    saved = json.loads(out.read_text())
    assert saved["tags"] == table and saved["threshold"] == 0.6 and saved["model"] == "shapes-mdm"
    assert saved["machine"]["cpu_capability"]  # the CPU it ran on (trl_htgrpo.machine)
    from trl_htgrpo.evaluation.failures import KINDS

    for row in table.values():  # every image is correct or has exactly one first failure
        assert sum(row[k] for k in KINDS) == pytest.approx(1.0) and 0.0 <= row["given_objects"] <= 1.0


def test_plot_diagnosis_draws_the_gradient_norm_before_clipping_per_step(monkeypatch):
    """The panel that shows the long horizon's drift: grad_norm as logged (before clipping), on a log scale."""
    plot = _load_script("plot_diagnosis", ROOT / "benchmarks" / "plot_diagnosis.py", monkeypatch)
    log = [{"reward": 0.5, "grad_norm": g} for g in (0.25, 2.5, 25.0)]
    run_ = {"estimator": "ht", "ablation": "", "seed": 0, "log": log, "composition": [],
            "curve": [{"rollouts": 0, "overall": 0.39, "tags": {}}]}
    fig = plot.draw([run_])
    panel = fig.axes[plot.TITLES.index("gradient norm before clipping (per log step, log scale)")]
    assert list(panel.lines[0].get_ydata()) == [0.25, 2.5, 25.0] and panel.get_yscale() == "log"
