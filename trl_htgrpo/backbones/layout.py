"""MMaDA's text-to-image sequence layout, shared by every adapter that uses it (MMaDA, shapes):
``[pad].. <|t2i|> <bos> text <eos> <|soi|> image <|eoi|>``; the unconditional branch has empty text."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F


class MMaDALayout:
    """Mixin: prompts, the unconditional prompt and model inputs in MMaDA's layout.

    The adapter sets ``tokenizer``, ``t2i_id``, ``bos_token_id``, ``eos_token_id``, ``soi_id``,
    ``eoi_id``, ``text_budget`` (text tokens kept between ``<bos>`` and ``<eos>``) and ``_warned``.
    """

    def _wrap(self, text_ids: list[int]) -> list[int]:
        return [self.t2i_id, self.bos_token_id, *text_ids, self.eos_token_id, self.soi_id]

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        out = []
        for text in prompts:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if ids and ids[0] == self.bos_token_id:  # a tokenizer that adds <bos> anyway
                ids = ids[1:]
            if len(ids) > self.text_budget:
                if not self._warned:
                    warnings.warn(
                        f"prompt of {len(ids)} tokens truncated to the backbone's {self.text_budget} "
                        f"(shown once): {text[:80]!r}", stacklevel=2,
                    )
                    self._warned = True
                ids = ids[: self.text_budget]
            out.append(self._wrap(ids))
        return out

    def unconditional_prompt(self) -> list[int]:
        return self._wrap([])

    def build_inputs(self, prompt_ids, prompt_mask, image_ids):
        B = prompt_ids.shape[0]
        eoi = torch.full((B, 1), self.eoi_id, dtype=prompt_ids.dtype, device=prompt_ids.device)
        input_ids = torch.cat([prompt_ids, image_ids.to(prompt_ids.dtype), eoi], dim=1)  # (B, P + N + 1)
        mask = F.pad(prompt_mask.to(torch.long), (0, image_ids.shape[1] + 1), value=1)  # (B, P + N + 1)
        return input_ids, mask
