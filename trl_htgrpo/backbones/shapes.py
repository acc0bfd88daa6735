"""Backbone adapter of the shapes model, in MMaDA's layout:
``[PAD].. <|t2i|> <bos> text <eos> <|soi|> [MASK]*N <|eoi|>``; the unconditional branch has empty text."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..toy.codec import decode_codes
from ..toy.palette import CODEBOOK_SIZE, NUM_IMAGE_TOKENS


class ShapesBackbone:
    name = "shapes"

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
        self._warned = False

    def _wrap(self, text_ids: list[int]) -> list[int]:
        return [self.t2i_id, self.tokenizer.bos_token_id, *text_ids, self.tokenizer.eos_token_id, self.soi_id]

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        out = []
        for text in prompts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > self.max_text_length:
                if not self._warned:
                    warnings.warn(
                        f"prompt of {len(ids)} tokens truncated to the backbone's {self.max_text_length} "
                        f"(shown once): {text[:80]!r}", stacklevel=2,
                    )
                    self._warned = True
                ids = ids[: self.max_text_length]
            out.append(self._wrap(ids))
        return out

    def unconditional_prompt(self) -> list[int]:
        return self._wrap([])

    def build_inputs(self, prompt_ids, prompt_mask, image_ids):
        B = prompt_ids.shape[0]
        eoi = torch.full((B, 1), self.eoi_id, dtype=prompt_ids.dtype, device=prompt_ids.device)
        input_ids = torch.cat([prompt_ids, image_ids, eoi], dim=1)  # (B, P + N + 1)
        mask = F.pad(prompt_mask.to(torch.long), (0, image_ids.shape[1] + 1), value=1)  # (B, P + N + 1)
        return input_ids, mask

    def forward_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    def image_logits(self, logits: torch.Tensor, prompt_length: int) -> torch.Tensor:
        N, o = self.num_image_tokens, self.image_offset
        return logits[:, prompt_length : prompt_length + N, o : o + self.codebook_size]  # (B, N, V)

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids - self.image_offset

    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        return [decode_codes(c) for c in codes.detach().cpu()]
