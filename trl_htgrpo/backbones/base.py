"""The backbone protocol: the only place that knows a model family's token ids and layout.

Everything else (sampler, estimators, hierarchy, trainer) sees prompt ids, image tokens as codebook
indices in ``[0, V)``, and these few methods.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from PIL import Image


@runtime_checkable
class Backbone(Protocol):
    """A model family's sequence layout for text-to-image.

    Model input: ``prompt_ids (B, P) + image (B, N) + suffix``, left padded. ``codes_to_ids`` and ``ids_to_codes``
    map codebook indices to vocabulary ids and back. Adapters are made by a factory registered per
    ``config.model_type`` (:func:`~trl_htgrpo.backbones.register_backbone`).
    """

    name: str
    mask_token_id: int  # id of [MASK]
    num_image_tokens: int  # N
    codebook_size: int  # V
    max_prompt_length: int  # prompt tokens (layout included) beyond which prompts are truncated
    pad_token_id: int
    detector: str  # name of the GenEval detector for its images (trl_htgrpo.rewards.DETECTORS)
    sampling_defaults: dict  # sampler, diffusion_steps, guidance_scale where HTGRPOConfig leaves None

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """Prompt texts -> prompt id lists with the layout tokens before the image (``... <soi>``)."""

    def unconditional_prompt(self) -> list[int]:
        """Prompt ids of the unconditional branch of classifier-free guidance."""

    def build_inputs(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, image_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P) prompt ids/mask + (B, N) image *vocabulary* ids -> model input ids, attention mask."""

    def image_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids from ``build_inputs`` and their padding mask -> (B, N, V) codebook logits at the image tokens.

        The one place that calls the model, in the family's own convention (MMaDA: a (B, 1, L, L)
        ``attention_bias``; Lumina-DiMOO: ``attention_mask`` with positions from each row's first token); a model
        that can compute only these logits (the native LLaDA: ``logits_positions``, ``logits_vocab``) is asked to.
        """

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., N) codebook indices -> vocabulary ids."""

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """(..., N) vocabulary ids -> codebook indices."""

    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        """(B, N) codebook indices -> PIL images."""

    def to(self, device) -> "Backbone":
        """Put what the adapter owns (its VQ decoder) on ``device``; returns the adapter."""
