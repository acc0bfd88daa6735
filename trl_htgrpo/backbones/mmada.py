"""Backbone adapter of MMaDA (``Gen-Verse/MMaDA``, ``MMadaModelLM``), text-to-image.

Sequence (``training/prompting_utils.py``, ``UniversalPrompting.t2i_gen_prompt``)::

    [iPAD] * (513 - len) <|t2i|> <bos> text <eos> <|soi|> [MASK] * N <|eoi|>

The text block is always left padded to ``max_text_length + 1`` = 513 tokens (attention off at the padding), so
the image sits at the same absolute positions in every row, as in MMaDA's training and ``t2i_generate``: the
model's rotary positions are ``arange(L)``, padding included. Image token id = VQ code + 126349 (``app.py``
hard-codes ``len(tokenizer)``), mask 126336. The unconditional branch is the empty text. The model is called
with MMaDA's (B, 1, L, L) boolean ``attention_bias`` (``attention="bias"``), which the native
:class:`~trl_htgrpo.models.MMaDAModelLM` and the published code both take; the native model is asked for the
image logits only (positions and codebook). Images decode with Show-o's MAGVIT-v2 (``showlab/magvitv2``; an
MMaDA checkpoint carries none: ``--vq_model_name_or_path``), pixels by truncation as ``inference_t2i.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image

from .common import check_vocabulary, image_logits_of, padding_attention_bias, resolve_vq_decoder
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
#: MMaDA-8B's ``vocab_size`` = ``embedding_size`` (LLaDA's 126464 resized for the image codes), and Lumina-DiMOO's
#: logits width (its generator reads the image offset as width - 8192 = 126356)
MMADA_VOCAB = 134656
LUMINA_DIMOO_VOCAB = 126356 + 8192


class MMaDABackbone(MMaDALayout):
    """MMaDA text-to-image layout, logit slice and decoding.

    Args:
        tokenizer: MMaDA's (LLaDA's) text tokenizer; needs ``__call__`` and ``bos_token_id`` / ``eos_token_id``.
        vq_decoder: a :class:`~trl_htgrpo.models.VQDecoder` of kind ``"magvitv2"``, a folder / hub id to load one
            from (``showlab/magvitv2``), or None (then ``decode_images`` raises, naming ``--vq_model_name_or_path``).
        num_image_tokens: N, 1024 for 512 px (32 x 32 codes, 16x downsampling); the checkpoint's ``num_vq_tokens``.
        max_text_length: MMaDA's ``dataset.preprocessing.max_seq_length`` (512). As in ``UniversalPrompting``,
            ``<|t2i|> <bos> text <eos>`` holds at most ``max_text_length + 1`` tokens, so text beyond
            ``max_text_length - 2`` tokens is cut; the prompt with ``<|soi|>`` is ``max_text_length + 2`` tokens.
        fixed_padding: pad every prompt to ``max_text_length + 2`` as MMaDA does (True); False pads to the batch.
        attention: ``"bias"`` (``attention_bias=bool[B, 1, L, L]``, MMaDA's convention) or ``"mask"`` (a model
            that takes the (B, L) ``attention_mask`` as bidirectional padding).
        codebook_size: V, 8192 (MAGVIT-v2's 13-bit lookup-free quantizer).
    """

    name = "mmada"
    detector = "mask2former"  # GenEval detector of photographs (trl_htgrpo.rewards.DETECTORS)
    vq_kind = "magvitv2"
    #: MMaDA's published loop (models/modeling_mmada.py t2i_generate) with its README's 15 steps and guidance 3.5
    sampling_defaults = {"sampler": "mmada", "diffusion_steps": 15, "guidance_scale": 3.5}

    def __init__(self, tokenizer, vq_decoder=None, num_image_tokens: int = 1024, max_text_length: int = 512,
                 fixed_padding: bool = True, attention: str = "bias", codebook_size: int = 8192):
        if attention not in ("bias", "mask"):
            raise ValueError(f"attention must be 'bias' or 'mask', got {attention!r}")
        if max_text_length < 3:
            raise ValueError(f"max_text_length must be at least 3, got {max_text_length}")
        self.tokenizer = tokenizer
        self.vq_decoder = resolve_vq_decoder(vq_decoder, self.vq_kind)
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
        self.fixed_padding = fixed_padding
        self._warned = False

    @classmethod
    def from_model(cls, model, tokenizer, vq_model_name_or_path=None, checkpoint=None, image_size=None,
                   **options) -> "MMaDABackbone":
        """The adapter of an MMaDA checkpoint: N and V from its config, its vocabulary checked, and its VQ decoder
        from ``vq_model_name_or_path`` (MMaDA checkpoints carry none)."""
        config = model.config
        N = int(getattr(config, "num_vq_tokens", 1024))
        side = 16 * math.isqrt(N)
        if image_size is not None and image_size != side:
            raise ValueError(f"image_size={image_size}: an MMaDA checkpoint draws {side}x{side} images (num_vq_tokens="
                             f"{N} = {side // 16}x{side // 16} codes); remove image_size or set it to {side}")
        check_vocabulary(config, cls.name, MMADA_VOCAB, {"lumina_dimoo": LUMINA_DIMOO_VOCAB})
        vq = None
        if vq_model_name_or_path is not None or checkpoint is not None:
            from ..models.vq import find_vq_decoder

            vq = find_vq_decoder(checkpoint, vq_model_name_or_path)
        return cls(tokenizer, vq_decoder=vq, num_image_tokens=N,
                   codebook_size=int(getattr(config, "codebook_size", 8192)), **options)

    # ------------------------------------------------------------------ model inputs / outputs
    def build_inputs(self, prompt_ids, prompt_mask, image_ids):
        if self.fixed_padding and prompt_ids.shape[1] < self.max_prompt_length:  # MMaDA's fixed text block
            pad = self.max_prompt_length - prompt_ids.shape[1]
            prompt_ids = F.pad(prompt_ids, (pad, 0), value=self.pad_token_id)
            prompt_mask = F.pad(prompt_mask, (pad, 0), value=0)
        return super().build_inputs(prompt_ids, prompt_mask, image_ids)

    def image_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and padding mask -> (B, N, V) codebook logits at the image block ``[-(N + 1), -1)``."""
        N, o, V = self.num_image_tokens, self.image_offset, self.codebook_size
        positions = torch.arange(input_ids.shape[1] - N - 1, input_ids.shape[1] - 1, device=input_ids.device)
        kwargs = ({"attention_mask": attention_mask} if self.attention == "mask"
                  else {"attention_bias": padding_attention_bias(attention_mask)})
        return image_logits_of(model, input_ids, kwargs, positions, (o, o + V))

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids - self.image_offset

    # ------------------------------------------------------------------ decoding
    def to(self, device) -> "MMaDABackbone":
        self.vq_decoder = resolve_vq_decoder(self.vq_decoder, self.vq_kind, device=device, load=True)
        return self

    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        """(B, N) codes -> PIL images: clamped to the codebook, decoded by MAGVIT-v2, truncated to uint8."""
        self.vq_decoder = resolve_vq_decoder(self.vq_decoder, self.vq_kind, load=True, family=self.name)
        return self.vq_decoder.to_pil(codes.long().clamp(0, self.codebook_size - 1))
