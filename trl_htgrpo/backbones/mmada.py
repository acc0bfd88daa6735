"""Backbone adapter of MMaDA (``Gen-Verse/MMaDA``, ``MMadaModelLM``), text-to-image.

Sequence (``training/prompting_utils.py``, ``UniversalPrompting.t2i_gen_prompt``)::

    [iPAD].. <|t2i|> <bos> text <eos> <|soi|> [MASK] * N <|eoi|>

Image token id = VQ code + 126349 (``len(tokenizer)``; ``app.py`` hard-codes it), mask 126336. The
unconditional branch of classifier-free guidance is the empty text (``<|t2i|> <bos> <eos> <|soi|>``).
MMaDA's forward takes a (B, 1, L, L) boolean ``attention_bias``; given only a (B, L) ``attention_mask``
with zeros, its LLaDA code falls back to a *causal* bias (``models/modeling_llada.py``), so
``forward_logits`` builds the bias from the padding mask. Images decode with Show-o's MAGVIT-v2
(``showlab/magvitv2``), which this package does not ship: pass its ``decode_code`` as ``vq_decoder``.
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from .common import decoder_device, images_to_pil, padding_attention_bias
from .layout import MMaDALayout

#: MMaDA's reserved ids (``training/prompting_utils.py: reserved_token_mapping``) and LLaDA's mask id.
MMADA_TOKENS = {
    "mask": 126336,
    "soi": 126084,
    "eoi": 126085,
    "t2i": 126088,
    "ipad": 126093,
    "image_offset": 126349,
}


class MMaDABackbone(MMaDALayout):
    """MMaDA text-to-image layout, logit slice and decoding.

    Args:
        tokenizer: MMaDA's (LLaDA's) text tokenizer; needs ``__call__`` and ``bos_token_id`` / ``eos_token_id``.
        vq_decoder: callable ``codes (B, N) long -> images (B, 3, H, W) float in [-1, 1]``, e.g. the bound
            ``decode_code`` of MMaDA's ``MAGVITv2.from_pretrained("showlab/magvitv2")``. Needed only by
            ``decode_images`` (rewards); sampling and log-probs do not use it.
        num_image_tokens: N, 1024 for 512 px (32 x 32 codes, 16x downsampling).
        max_text_length: MMaDA's ``dataset.preprocessing.max_seq_length`` (512). As in ``UniversalPrompting``,
            ``<|t2i|> <bos> text <eos>`` holds at most ``max_text_length + 1`` tokens, so text beyond
            ``max_text_length - 2`` tokens is cut; the prompt with ``<|soi|>`` is at most ``max_text_length + 2``.
        attention: ``"bias"`` (MMaDA's remote code: ``model(input_ids, attention_bias=bool[B, 1, L, L])``) or
            ``"mask"`` (a model that takes the Hugging Face ``attention_mask`` (B, L) and treats it as padding,
            bidirectionally).
        codebook_size: V, 8192 (MAGVIT-v2's 13-bit lookup-free quantizer).
    """

    name = "mmada"
    detector = "mask2former"  # GenEval detector of photographs (trl_htgrpo.rewards.DETECTORS)
    #: MMaDA's published loop (models/modeling_mmada.py t2i_generate) with its README's 15 steps and guidance 3.5
    sampling_defaults = {"sampler": "mmada", "diffusion_steps": 15, "guidance_scale": 3.5}

    def __init__(
        self,
        tokenizer,
        vq_decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        num_image_tokens: int = 1024,
        max_text_length: int = 512,
        attention: str = "bias",
        codebook_size: int = 8192,
    ):
        if attention not in ("bias", "mask"):
            raise ValueError(f"attention must be 'bias' or 'mask', got {attention!r}")
        if max_text_length < 3:
            raise ValueError(f"max_text_length must be at least 3, got {max_text_length}")
        self.tokenizer = tokenizer
        self.vq_decoder = vq_decoder
        self.attention = attention
        self.mask_token_id = MMADA_TOKENS["mask"]
        self.pad_token_id = MMADA_TOKENS["ipad"]
        self.t2i_id, self.soi_id, self.eoi_id = MMADA_TOKENS["t2i"], MMADA_TOKENS["soi"], MMADA_TOKENS["eoi"]
        self.image_offset = MMADA_TOKENS["image_offset"]
        self.bos_token_id, self.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        if self.bos_token_id is None or self.eos_token_id is None:
            raise ValueError("MMaDA's layout needs the tokenizer's bos_token_id and eos_token_id")
        self.num_image_tokens = num_image_tokens
        self.codebook_size = codebook_size
        self.max_text_length = max_text_length
        self.max_prompt_length = max_text_length + 2  # <|t2i|> <bos> text <eos> <|soi|>
        self.text_budget = max_text_length - 2  # text tokens that fit between <bos> and <eos>
        self._warned = False

    # ------------------------------------------------------------------ model inputs / outputs
    def forward_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and padding mask -> (B, L, vocab) logits, called the way MMaDA's code calls the model."""
        if self.attention == "mask":
            return model(input_ids=input_ids, attention_mask=attention_mask).logits
        return model(input_ids=input_ids, attention_bias=padding_attention_bias(attention_mask)).logits

    def image_logits(self, logits: torch.Tensor, prompt_length: int) -> torch.Tensor:
        N, o = self.num_image_tokens, self.image_offset
        if logits.shape[1] != prompt_length + N + 1:
            raise ValueError(
                f"logits of length {logits.shape[1]} do not hold prompt {prompt_length} + image {N} + <|eoi|>"
            )
        return logits[:, prompt_length : prompt_length + N, o : o + self.codebook_size]  # (B, N, V)

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids - self.image_offset

    # ------------------------------------------------------------------ decoding
    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        if self.vq_decoder is None:
            raise RuntimeError(
                "MMaDABackbone has no VQ decoder, so it cannot turn image tokens into pictures. MMaDA decodes with "
                "Show-o's MAGVIT-v2, whose code is not part of this package: take models/modeling_magvitv2.py "
                "from https://github.com/Gen-Verse/MMaDA (it needs diffusers), load "
                "`vq = MAGVITv2.from_pretrained('showlab/magvitv2').eval()`, and pass "
                "`MMaDABackbone(tokenizer, vq_decoder=vq.decode_code)`, any callable mapping codes (B, N) to "
                "images (B, 3, H, W) in [-1, 1]. With backbone_for(), register a factory that sets vq_decoder."
            )
        codes = codes.long().clamp(0, self.codebook_size - 1)
        device = decoder_device(self.vq_decoder)
        if device is not None:
            codes = codes.to(device)
        with torch.no_grad():
            images = self.vq_decoder(codes)
        return images_to_pil(images, (-1.0, 1.0))
