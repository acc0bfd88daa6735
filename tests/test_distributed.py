"""End-to-end launches of examples/train_htgrpo.py with the shipped accelerate configs, on CPU.

Each test starts ``accelerate launch`` in a subprocess with a tiny model (hidden 32, one layer),
1-2 optimizer steps and 4 diffusion steps. Children see no GPU (``CUDA_VISIBLE_DEVICES=""``) and no
``--use_cpu`` flag: HTGRPOConfig switches ``use_cpu`` on for a multi-process launch without an
accelerator, which is what makes the ranks of a MULTI_GPU or DeepSpeed launch join one gloo group
(without it every rank silently trains alone with world size 1; the ``use_cpu`` key of the yaml is
ignored by those launchers). The 2-rank tests below fail if that stops working.

What each test checks:
* return code 0 and no gloo abort at exit (``end_distributed``);
* a saved model (``model.safetensors``) and a checkpoint;
* 2 ranks really ran: ``per_device_train_batch_size=2`` with ``num_generations=4`` is only valid for
  world size >= 2 (TRL: ``generation_batch_size = 2 x world`` must be divisible by 4), and the
  checkpoint holds one RNG state per rank (``rng_state_0.pth``, ``rng_state_1.pth``); with
  DeepSpeed, one ZeRO shard per rank;
* each group of 4 is split 2 + 2 over the ranks and TRL gathers the rewards before computing group
  advantages, so the logged ``reward_std`` / ``frac_reward_zero_std`` are group statistics.

The first DeepSpeed launch on a machine compiles a small C++ op (about 2 minutes on 2 cores,
cached in ~/.cache/torch_extensions); the tests allow for it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "examples" / "accelerate_configs"
SCRIPT = ROOT / "examples" / "train_htgrpo.py"

needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.pop("ACCELERATE_CONFIG_FILE", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shapes_model(tmp_path_factory) -> str:
    """A tiny shapes model saved by examples/pretrain_shapes.py (one pretraining step)."""
    out = tmp_path_factory.mktemp("shapes-tiny")
    cmd = [sys.executable, str(ROOT / "examples" / "pretrain_shapes.py"), "--steps", "1", "--batch_size", "8",
           "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--output_dir", str(out)]
    subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, timeout=180, capture_output=True)
    assert (out / "model.safetensors").exists()
    return str(out)


def launch(config: str, model: str, out: Path, *args: str, num_processes: int | None = None,
           timeout: float = 300, model_file: str = "model.safetensors") -> subprocess.CompletedProcess:
    """``accelerate launch --config_file <config> examples/train_htgrpo.py`` with tiny settings plus ``args``."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
           "--main_process_port", str(_free_port())]
    if num_processes is not None:
        cmd += ["--num_processes", str(num_processes)]
    cmd += [str(SCRIPT), "--model_name_or_path", model, "--output_dir", str(out),
            "--max_steps", "1", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--num_generations", "4", "--diffusion_steps", "4", "--eval_before_after", "false",
            "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "1", *args]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    (out.parent / f"{out.name}.log").write_text(log)
    print(f"{config} ({num_processes or 'config'} processes): rc={proc.returncode}, {time.time() - t0:.1f}s")
    assert proc.returncode == 0, f"launch failed (rc={proc.returncode}):\n{log[-6000:]}"
    assert "terminate called" not in log and "SIGABRT" not in log, f"unclean exit:\n{log[-3000:]}"
    assert (out / model_file).exists(), sorted(p.name for p in out.iterdir())
    return proc


def checkpoint(out: Path, step: int, model_file: str = "model.safetensors") -> Path:
    ckpt = out / f"checkpoint-{step}"
    assert (ckpt / model_file).exists() and (ckpt / "trainer_state.json").exists(), sorted(out.iterdir())
    return ckpt


def logged(ckpt: Path) -> dict:
    """The first training log entry of the checkpoint's trainer_state.json."""
    history = json.loads((ckpt / "trainer_state.json").read_text())["log_history"]
    return next(h for h in history if "reward" in h)


def test_single_process(shapes_model, tmp_path):
    out = tmp_path / "single"
    launch("single_process.yaml", shapes_model, out)
    ckpt = checkpoint(out, 1)
    assert (ckpt / "rng_state.pth").exists()  # one process: no rank suffix


def test_ddp_two_ranks_split_groups(shapes_model, tmp_path):
    """Two gloo ranks, each with half of a group (2 of 4 generations of a prompt)."""
    out = tmp_path / "ddp"
    launch("multi_process.yaml", shapes_model, out, "--per_device_train_batch_size", "2", "--max_steps", "2",
           num_processes=2)
    ckpt = checkpoint(out, 2)
    assert (ckpt / "rng_state_0.pth").exists() and (ckpt / "rng_state_1.pth").exists()  # both ranks saved
    first = logged(ckpt)
    for key in ("reward", "reward_std", "frac_reward_zero_std"):
        assert key in first, sorted(first)
    assert 0.0 <= first["frac_reward_zero_std"] <= 1.0 and first["reward_std"] >= 0.0


@needs_deepspeed
def test_zero2_two_ranks(shapes_model, tmp_path):
    out = tmp_path / "zero2"
    launch("zero2.yaml", shapes_model, out, "--per_device_train_batch_size", "2", num_processes=2, timeout=480)
    shards = checkpoint(out, 1) / "global_step1"
    assert (shards / "zero_pp_rank_0_mp_rank_00_optim_states.pt").exists()
    assert (shards / "zero_pp_rank_1_mp_rank_00_optim_states.pt").exists()  # optimizer state partitioned over 2 ranks
    assert "reward_std" in logged(checkpoint(out, 1))


@needs_deepspeed
def test_zero3_two_ranks_with_eval(shapes_model, tmp_path):
    """ZeRO-3 over 2 ranks with a KL term and the held-out evaluation before and after training:
    parameters are gathered for sampling, 3 images over 2 ranks leave one rank a padded shard, and
    the reference model is a copy of the policy made from its partitioned weights."""
    out = tmp_path / "zero3"
    launch("zero3.yaml", shapes_model, out, "--per_device_train_batch_size", "2", "--beta", "0.04",
           "--eval_before_after", "true", "--eval_max_prompts", "3", "--eval_images_per_prompt", "1",
           num_processes=2, timeout=480)
    ckpt = checkpoint(out, 1)
    assert (ckpt / "global_step1" / "zero_pp_rank_1_mp_rank_00_model_states.pt").exists()  # parameters partitioned
    assert abs(logged(ckpt)["kl"]) < 1e-6  # first step: the reference equals the policy
    summary = json.loads((out / "heldout_before_after.json").read_text())
    assert 0.0 <= summary["before"] <= 1.0 and 0.0 <= summary["after"] <= 1.0


@needs_deepspeed
@pytest.mark.parametrize("config", ["zero2.yaml", "zero3.yaml"])
def test_deepspeed_single_process(shapes_model, tmp_path, config):
    out = tmp_path / config.removesuffix(".yaml")
    launch(config, shapes_model, out, num_processes=1, timeout=480)
    assert (checkpoint(out, 1) / "global_step1").is_dir()  # saved by the DeepSpeed engine


@needs_deepspeed
def test_lora_zero3_two_ranks(shapes_model, tmp_path):
    """LoRA under ZeRO-3 on 2 ranks with a KL term (the reference is the base model, adapter disabled)."""
    out = tmp_path / "lora-zero3"
    launch("zero3.yaml", shapes_model, out, "--per_device_train_batch_size", "2", "--beta", "0.04",
           "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
           "--lora_target_modules", "qkv", "proj", num_processes=2, timeout=480, model_file="adapter_model.safetensors")
    assert (checkpoint(out, 1, "adapter_model.safetensors") / "global_step1" / "zero_pp_rank_1_mp_rank_00_model_states.pt").exists()


def test_two_ranks_train_the_same_global_batch_as_one(shapes_model, tmp_path):
    """2 processes == 1 process: the same global batch of 8 images (2 prompts x 4) on one rank, or split 4 + 4 over
    two gloo ranks, gives the same weights after one optimizer step. Every image is drawn with a generator seeded
    by its row in the global batch, rewards are gathered before the group advantages, and DDP averages the two
    ranks' gradients (each the mean over its 4 rows) into the mean over 8. What remains is the order of float
    sums; with plain SGD (update = lr * grad, lr = 0.1) that moves a weight by at most about lr * 1e-6 here, so the
    test allows 1e-6 (the weights are O(0.02) to O(1); one step moves them by up to 1e-2)."""
    from safetensors.torch import load_file

    common = ("--optim", "sgd", "--learning_rate", "0.1", "--lr_scheduler_type", "constant", "--save_strategy", "no")
    launch("single_process.yaml", shapes_model, tmp_path / "one", "--per_device_train_batch_size", "8", *common)
    launch("multi_process.yaml", shapes_model, tmp_path / "two", "--per_device_train_batch_size", "4", *common,
           num_processes=2)
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    base = load_file(Path(shapes_model) / "model.safetensors")
    moved = max((one[k] - base[k]).abs().max().item() for k in one)
    assert moved > 1e-4  # the step did something
    for k in one:
        diff = (one[k] - two[k]).abs().max().item()
        assert diff <= 1e-6, f"{k}: 1 vs 2 processes differ by {diff}"
