"""Shared fixtures: a tiny shapes model saved with its tokenizer, and fast trainer settings."""

from __future__ import annotations

import os

import pytest
import torch
from tiny_shapes import fast_args, make_tiny_model  # noqa: F401  (re-exported for fixtures)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    model, tok = make_tiny_model()
    path = tmp_path_factory.mktemp("tiny-shapes")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


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
