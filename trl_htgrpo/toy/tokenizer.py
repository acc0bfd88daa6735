"""Word-level tokenizer of the shapes world, a real ``PreTrainedTokenizerFast``.

Vocabulary: special tokens first (MMaDA's roles: ``<|t2i|>``, ``<|soi|>``, ``<|eoi|>``, the mask
``<|mdm_mask|>``, ``[PAD]`` playing ``[iPAD]``), then every word of the prompt generator, then one
token ``<img_k>`` per tile code. Unknown words map to ``[UNK]``.
"""

from __future__ import annotations

import re

from .palette import CODEBOOK_SIZE
from .prompts import compositions

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "<bos>", "<eos>", "<|t2i|>", "<|soi|>", "<|eoi|>", "<|mdm_mask|>"]
IMAGE_TOKENS = [f"<img_{k}>" for k in range(CODEBOOK_SIZE)]
EXTRA_WORDS = ["the", "image", "picture", "of", "on", "in", "with", "next", "to", "beside", "left", "right"]


def prompt_words() -> list[str]:
    words = set(EXTRA_WORDS)
    for keys, make, _ in compositions().values():
        for k in keys:
            words.update(re.findall(r"[a-z]+", make(k)["prompt"]))
    return sorted(words)


def build_tokenizer():
    """A fresh tokenizer (the shipped one is saved beside the bundled weights)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + prompt_words() + IMAGE_TOKENS)}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<bos>", eos_token="<eos>",
        mask_token="<|mdm_mask|>", additional_special_tokens=["<|t2i|>", "<|soi|>", "<|eoi|>"] + IMAGE_TOKENS,
        padding_side="left", model_max_length=512,
    )
    return tokenizer
