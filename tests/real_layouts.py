"""Tiny random checkpoints saved in the published layouts of MMaDA and Lumina-DiMOO (nothing is downloaded).

* MMaDA: ``config.json`` with MMaDA's field names (model_type "mmada", architectures ["MMadaModelLM"]), sharded
  safetensors with the published keys, a word-level tokenizer with LLaDA's <bos>/<eos> ids, and a separate tiny
  MAGVIT-v2 folder (``config.json`` naming the class, plus sizes; ``pytorch_model.safetensors``).
* Lumina-DiMOO: the same for model_type "llada" (architectures ["LLaDAForMultiModalGeneration"]), a tokenizer
  with its tag tokens and ``<uncondition>`` at 126351, and a tiny diffusers ``VQModel`` in ``vqvae/``.

Real vocabulary widths (134656 and 134548 logits) so that every id lands where the published code puts it; a
2 x 2 code grid (N = 4, 32 px images) and d_model 32 so that a training step takes about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

BOS, EOS = 126080, 126081  # LLaDA's <|startoftext|>, <|endoftext|>
WORDS = ["a", "an", "photo", "of", "red", "blue", "green", "cat", "dog", "two", "left", "right", "the", "and"]
LUMINA_TAGS = {"<system>": 126340, "</system>": 126341, "<user>": 126342, "</user>": 126343, "<uncondition>": 126351}

LLADA_FIELDS = dict(  # every field of the published configs (MMaDA's MMadaConfig has no defaults)
    d_model=32, n_heads=2, n_kv_heads=2, n_layers=1, mlp_ratio=4, mlp_hidden_size=64, max_sequence_length=4096,
    rope=True, rope_theta=500000.0, rope_full_precision=True, alibi=False, alibi_bias_max=8.0,
    block_type="llama", block_group_size=1, activation_type="silu", layer_norm_type="rms", layer_norm_with_affine=True,
    rms_norm_eps=1e-5, attention_layer_norm=False, attention_layer_norm_with_affine=True, bias_for_layer_norm=False,
    include_bias=False, include_qkv_bias=False, input_emb_norm=False, scale_logits=False, weight_tying=False,
    attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0, multi_query_attention=None,
    init_device="meta", init_fn="mitchell", init_std=0.02, init_cutoff_factor=None, precision="amp_bf16",
    flash_attention=False, mask_token_id=126336, eos_token_id=EOS, pad_token_id=126081, use_cache=False,
)


def _tokenizer(extra: dict[str, int]):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{w: 1000 + i for i, w in enumerate(WORDS)}, "<|startoftext|>": BOS, "<|endoftext|>": EOS,
             **extra}
    t = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   unk_token="[UNK]", pad_token="<|endoftext|>", additional_special_tokens=list(extra))


def _save_llada(folder: Path, config_cls, model_cls, fields: dict, architecture: str, tokenizer, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = model_cls(config_cls(**fields))
    model.save_pretrained(folder, max_shard_size="8MB")  # sharded, with model.safetensors.index.json
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = [architecture]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_mmada(folder: Path, seed: int = 0) -> Path:
    from trl_htgrpo.models import MMaDAConfig, MMaDAModelLM

    fields = dict(LLADA_FIELDS, vocab_size=134656, embedding_size=134656, llm_vocab_size=126464, codebook_size=8192,
                  num_vq_tokens=4, num_new_special_tokens=0, new_vocab_size=134656)
    return _save_llada(folder, MMaDAConfig, MMaDAModelLM, fields, "MMadaModelLM", _tokenizer({}), seed)


def save_tiny_magvitv2(folder: Path, seed: int = 0) -> Path:
    """A MAGVIT-v2 with the published structure and tiny channels (16x downsampling, 13-bit codes)."""
    from safetensors.torch import save_file

    from trl_htgrpo.models import MAGVITv2

    sizes = dict(ch=8, encoder_ch_mult=[1, 1, 1, 1, 1], encoder_num_res_blocks=[1, 1, 1, 1, 1],
                 decoder_ch_mult=[1, 1, 1, 1, 1], decoder_num_res_blocks=[1, 1, 1, 1, 1], norm_groups=4)
    torch.manual_seed(seed)
    model = MAGVITv2(**sizes)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "MAGVITv2", **sizes}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "pytorch_model.safetensors")
    return folder


def save_tiny_lumina(folder: Path, seed: int = 0) -> Path:
    """Lumina-DiMOO's layout: the LLaDA weights and tokenizer at the top, a diffusers VQModel in ``vqvae/``."""
    from diffusers import VQModel

    from trl_htgrpo.models import LLaDAConfig, LLaDAModelLM

    fields = dict(LLADA_FIELDS, vocab_size=134548, embedding_size=134548)
    _save_llada(folder, LLaDAConfig, LLaDAModelLM, fields, "LLaDAForMultiModalGeneration", _tokenizer(LUMINA_TAGS), seed)
    torch.manual_seed(seed)
    vq = VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 5,
                 up_block_types=("UpDecoderBlock2D",) * 5, block_out_channels=(8,) * 5, layers_per_block=1,
                 latent_channels=4, norm_num_groups=4, num_vq_embeddings=8192, vq_embed_dim=4,
                 lookup_from_codebook=True, force_upcast=False)
    vq.save_pretrained(folder / "vqvae")
    return folder
