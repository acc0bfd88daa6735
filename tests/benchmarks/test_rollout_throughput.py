"""Smoke test of benchmarks/rollout_throughput.py: the smallest preset runs end to end and writes what it promises.

No timed assertions: the figures depend on the machine; the test checks the JSON's structure, that both sides of
every comparison were measured (positive rates, positive ratios), that the update ran for G = 4 and 8 with LoRA on
the blocks' seven projections and not on the head, and that the FLOP model favours the restricted head.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_smoke_preset_writes_json_and_plot(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "benchmarks/rollout_throughput.py", "--preset", "smoke", "--output_dir",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert "ratios ours / published" in proc.stdout
    res = json.loads((tmp_path / "rollout_throughput.json").read_text())
    assert {"preset", "config", "environment", "estimates", "rollout", "update", "ratios", "targets", "seconds", "machine"} <= set(res)
    assert res["preset"] == "smoke" and res["environment"]["device"] == "cpu"
    # the machine it ran on, as every results JSON names it (trl_htgrpo.machine)
    assert res["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert res["machine"]["torch_threads"] >= 1 and "torch" in res["machine"]["libraries"]
    assert set(res["rollout"]) == set(res["ratios"]) == {"mmada", "lumina_dimoo"}
    for family, r in res["rollout"].items():
        assert {"images", "steps", "guidance_scale", "image_tokens", "sequence_length", "ours", "published",
                "ratio_images_per_second", "flops_per_image"} <= set(r)
        for side in ("ours", "published"):
            assert _positive(r[side]["images_per_second"]) and len(r[side]["seconds"]) == res["config"]["repeats"]
            assert r[side]["memory_kind"] == "peak_rss"
        assert _positive(r["ratio_images_per_second"]) and r["ratio_images_per_second"] == res["ratios"][family]
        # what the model returned per call: ours the codebook at the N image positions of 2B rows; the published
        # loops full logits at every position and vocabulary row (MMaDA 2B rows at once, Lumina-DiMOO one)
        B, N, L = r["images"], r["image_tokens"], r["sequence_length"]["cond_max"]
        assert r["ours"]["logits_shape"] == [2 * B, N, 8192]
        width = {"mmada": 134656, "lumina_dimoo": 134548}[family]
        assert r["published"]["logits_shape"] == ([2 * B, L, width] if family == "mmada" else [1, L, width])
        # the published loops compute the full head at every position: more matmul work per image than ours
        assert r["flops_per_image"]["published_over_ours"] > 1
    assert set(res["targets"]) == {"lumina_dimoo_at_least_2x", "mmada_at_least_1x"}
    upd = res["update"]
    assert [g["group_size"] for g in upd["groups"]] == [4, 8] and upd["gradient_checkpointing"]
    for g in upd["groups"]:
        assert _positive(g["update_seconds"]) and _positive(g["first_step_seconds"])
        assert len(g["update_seconds_all"]) == upd["timed_steps"] == upd["num_iterations"] - 1
        assert g["peak_memory_bytes"] is None or _positive(g["peak_memory_bytes"])
    # peft "all-linear": the seven projections of every block (1 layer in the smoke model), never the head
    lora = upd["lora"]
    assert lora["projections"] == ["attn_out", "ff_out", "ff_proj", "k_proj", "q_proj", "up_proj", "v_proj"]
    assert lora["modules"] == 7 * res["config"]["model"]["n_layers"] and not lora["head_adapted"]
    assert (tmp_path / "rollout_throughput.png").stat().st_size > 1000


def test_estimate_only_needs_no_model(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "benchmarks/rollout_throughput.py", "--preset", "gpu-8b", "--estimate_only",
                           "--output_dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    est = json.loads((tmp_path / "rollout_throughput.json").read_text())["estimates"]
    # LLaDA-8B's shape: 8.08B parameters with MMaDA's 134656-wide embedding and untied head
    assert est["mmada"]["parameters"] == 8_082_690_048 and est["mmada"]["head_parameters"] == 134656 * 4096
    assert est["lumina_dimoo"]["head_parameters"] == 134548 * 4096
    # MMaDA's fixed text block: 514 prompt tokens + 1024 codes + <|eoi|>
    assert est["mmada"]["sequence_length"] == {"cond_max": 1539, "cond_min": 1539, "uncond": 1539}
    # LoRA r = 128 on the 7 projections of 32 blocks: 32 * 128 * (4 * 2 * 4096 + 3 * (4096 + 12288))
    assert est["mmada"]["lora_parameters_r"] == 32 * 128 * (8 * 4096 + 3 * (4096 + 12288))
