"""Shared fixtures: a tiny shapes model saved with its tokenizer, and fast trainer settings."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


def make_tiny_model(seed: int = 0, hidden_size: int = 32):
    from trl_htgrpo.toy import ShapesDiffusionConfig, ShapesDiffusionModel
    from trl_htgrpo.toy.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = ShapesDiffusionConfig(
        vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=2 * hidden_size, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, mask_token_id=tok.mask_token_id,
    )
    return ShapesDiffusionModel(cfg), tok


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    model, tok = make_tiny_model()
    path = tmp_path_factory.mktemp("tiny-shapes")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def fast_args(output_dir, **overrides):
    """HTGRPOConfig for 2-core tests: tiny batches, 4 diffusion steps, no trackers, no saving."""
    from trl_htgrpo import HTGRPOConfig

    kw = dict(
        output_dir=str(output_dir), per_device_train_batch_size=8, gradient_accumulation_steps=1,
        num_generations=4, max_steps=3, learning_rate=1e-3, logging_steps=1, report_to="none",
        activation_checkpointing=False, save_strategy="no", diffusion_steps=4, log_images_steps=0, seed=0,
        dataloader_num_workers=0,
    )
    kw.update(overrides)
    return HTGRPOConfig(**kw)


@pytest.fixture(scope="session")
def train_dataset():
    from trl_htgrpo.toy import load_prompts

    return load_prompts("train").select(range(32))


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors: intra-op threads only add synchronisation (25x slower on a busy 2-core CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tok():
    from trl_htgrpo.toy.tokenizer import build_tokenizer

    return build_tokenizer()
