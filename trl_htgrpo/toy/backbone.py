"""Backbone adapter of the shapes model, in MMaDA's layout:
``[PAD].. <|t2i|> <bos> text <eos> <|soi|> [MASK]*N <|eoi|>``; the unconditional branch has empty text."""

from __future__ import annotations

import torch
from PIL import Image

from .codec import decode_codes
from .palette import CODEBOOK_SIZE, NUM_IMAGE_TOKENS
from ..backbones.layout import MMaDALayout


class ShapesBackbone(MMaDALayout):
    name = "shapes"
    detector = "shapes"  # GenEval detector of its images (trl_htgrpo.rewards.DETECTORS)
    #: sampler settings where the config leaves None (guidance 2.0 chosen on the validation split, docs/quickstart.md)
    sampling_defaults = {"sampler": "maskgit", "diffusion_steps": 12, "guidance_scale": 2.0}

    def __init__(self, tokenizer, max_text_length: int = 24):
        self.tokenizer = tokenizer
        ids = tokenizer.convert_tokens_to_ids
        self.t2i_id, self.soi_id, self.eoi_id = ids("<|t2i|>"), ids("<|soi|>"), ids("<|eoi|>")
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.image_offset = ids("<img_0>")
        self.num_image_tokens = NUM_IMAGE_TOKENS
        self.codebook_size = CODEBOOK_SIZE
        self.max_text_length = max_text_length
        self.max_prompt_length = max_text_length + 4
        self.text_budget = max_text_length
        self.bos_token_id, self.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        self._warned = False

    @classmethod
    def from_model(cls, model, tokenizer, checkpoint=None, **options) -> "ShapesBackbone":
        for name, value in options.items():
            if value is not None:
                raise ValueError(f"{name}={value!r} does not apply to the shapes world (its tile codec decodes "
                                 "images; its size is fixed); remove it")
        return cls(tokenizer)

    def image_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and padding mask -> (B, N, V) codebook logits at the image block ``[-(N + 1), -1)``."""
        N, o = self.num_image_tokens, self.image_offset
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, -N - 1 : -1, o : o + self.codebook_size]  # (B, N, V)

    def to(self, device) -> "ShapesBackbone":
        return self

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids - self.image_offset

    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        return [decode_codes(c) for c in codes.detach().cpu()]
