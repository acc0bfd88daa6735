"""A tiny shapes model and fast trainer settings for 2-core tests (imported by tests as `tiny_shapes`)."""

from __future__ import annotations

import torch


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
