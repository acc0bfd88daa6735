"""Backbone adapter of Lumina-DiMOO (``Alpha-VLLM/Lumina-DiMOO``, ``LLaDAForMultiModalGeneration``), text-to-image.

Sequence (``inference/inference_t2i.py``, ``utils/prompt_utils.py``, ``utils/image_utils.py: add_break_line``)::

    tok("<system>Generate an image according to the text prompt.</system><user>{prompt}</user>")
    <answer-start 126354> <boi 126349>
    c(0,0) .. c(0,W-1) <newline 126084>  ...  c(H-1,0) .. c(H-1,W-1) <newline 126084>
    <eoi 126350> <answer-end 126355>

with image token id = VQ code + 126356 and mask 126336. The unconditional prompt keeps the system part and
replaces the text by ``<uncondition>`` (126351). The N = H * W codes are not contiguous: ``build_inputs`` lays
them out in rows, each followed by a fixed (never masked) newline, and ``image_logits`` reads the code
positions only. The published loop draws one unpadded prompt at a time (its attention ignores every mask, so
padding would leak into real positions); the native model batches left-padded rows with a real padding mask
and positions counted from each row's first token (``cumsum(mask) - 1``), which gives the same logits as one
unpadded row (``tests/models/test_llada.py``). Images decode with the diffusers ``VQModel`` in the checkpoint's
``vqvae`` subfolder, pixels rounded as ``utils/image_utils.py: decode_vq_to_image``.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from .common import check_vocabulary, image_logits_of, padding_attention_bias, resolve_vq_decoder

#: ``config.py: SPECIAL_TOKENS`` of Alpha-VLLM/Lumina-DiMOO.
LUMINA_DIMOO_TOKENS = {
    "mask": 126336,
    "newline": 126084,
    "image_offset": 126356,
    "answer_start": 126354,
    "answer_end": 126355,
    "boi": 126349,
    "eoi": 126350,
    "uncondition": 126351,
}
#: ``config.py: PROMPT_TEMPLATES["image_generation"]``.
T2I_SYSTEM_PROMPT = "Generate an image according to the text prompt."


class LuminaDiMOOBackbone:
    """Lumina-DiMOO text-to-image layout, logit gather and decoding.

    Args:
        tokenizer: Lumina-DiMOO's tokenizer (``<system>``, ``<user>``, ``<uncondition>`` ... are its special
            tokens). Prompts are tokenized with its default special tokens, as the reference script does.
        vq_decoder: a :class:`~trl_htgrpo.models.VQDecoder` of kind ``"vqmodel"``, a
            :class:`~trl_htgrpo.models.VQSource` or path (the checkpoint, whose ``vqvae/`` holds it), or None.
        grid: (H, W) code grid; 1024 px -> (64, 64) (the published default), 512 px -> (32, 32). N = H * W.
        max_prompt_length: prompt tokens (template, answer-start and boi included) beyond which the user text
            is cut: 1026 = the 1024 instruction tokens of ``train/train.py`` (``truncation=True, max_length=1024``)
            + ``<answer-start> <boi>``. The inference scripts do not truncate.
        attention: how ``image_logits`` calls the model. ``"mask"`` (the native model): ``attention_mask`` (B, L)
            as bidirectional padding and ``position_ids = cumsum(mask) - 1``, so a left-padded row equals the
            published unpadded one. ``"bias"``: ``attention_bias=bool[B, 1, L, L]`` and default positions.
        system_prompt: the system text of the template.
        codebook_size: V, 8192.
    """

    name = "lumina_dimoo"
    detector = "mask2former"  # GenEval detector of photographs (trl_htgrpo.rewards.DETECTORS)
    vq_kind = "vqmodel"
    #: Lumina-DiMOO's published loop (generators/image_generation_generator.py) with inference_t2i.py's defaults
    sampling_defaults = {"sampler": "lumina_dimoo", "diffusion_steps": 64, "guidance_scale": 4.0}

    def __init__(
        self,
        tokenizer,
        vq_decoder=None,
        grid: tuple[int, int] = (64, 64),
        max_prompt_length: int = 1026,
        attention: str = "mask",
        system_prompt: str = T2I_SYSTEM_PROMPT,
        codebook_size: int = 8192,
    ):
        if attention not in ("mask", "bias"):
            raise ValueError(f"attention must be 'mask' or 'bias', got {attention!r}")
        H, W = (int(g) for g in grid)
        if H < 1 or W < 1:
            raise ValueError(f"grid must be two positive ints, got {grid!r}")
        t = LUMINA_DIMOO_TOKENS
        self.tokenizer = tokenizer
        self.vq_decoder = resolve_vq_decoder(vq_decoder, self.vq_kind)
        self.attention = attention
        self.grid = (H, W)
        self.num_image_tokens = H * W
        self.codebook_size = codebook_size
        self.max_prompt_length = max_prompt_length
        self.mask_token_id = t["mask"]
        self.pad_token_id = 0  # the value LLaDAForMultiModalGeneration pads with; padding is masked anyway
        self.newline_id, self.image_offset = t["newline"], t["image_offset"]
        self.boi_id, self.eoi_id = t["boi"], t["eoi"]
        self.answer_start_id, self.answer_end_id = t["answer_start"], t["answer_end"]
        self.uncondition_id = t["uncondition"]
        self.system_prompt = system_prompt
        self._prefix = f"<system>{system_prompt}</system><user>"
        self._suffix = "</user>"
        self._image_head = [self.answer_start_id, self.boi_id]
        self._uncond = self._ids(self._prefix + "<uncondition>" + self._suffix) + self._image_head
        if self.uncondition_id not in self._uncond:
            warnings.warn(
                f"the tokenizer does not turn '<uncondition>' into id {self.uncondition_id}: is it Lumina-DiMOO's "
                "tokenizer? The unconditional branch of guidance will not be the one the model was trained with.",
                stacklevel=2,
            )
        self._warned = False

    # ------------------------------------------------------------------ prompts
    def _ids(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def _encode(self, text: str) -> list[int]:
        ids = self._ids(self._prefix + text + self._suffix) + self._image_head
        if len(ids) <= self.max_prompt_length:
            return ids
        head, tail = self._ids(self._prefix), self._ids(self._suffix, add_special_tokens=False)
        budget = self.max_prompt_length - len(head) - len(tail) - len(self._image_head)
        if budget < 0:
            raise ValueError(f"max_prompt_length={self.max_prompt_length} is shorter than Lumina-DiMOO's template")
        body = self._ids(text, add_special_tokens=False)
        if not self._warned:
            warnings.warn(
                f"prompt of {len(body)} text tokens truncated to {budget} (max_prompt_length="
                f"{self.max_prompt_length}; shown once): {text[:80]!r}", stacklevel=3,
            )
            self._warned = True
        return head + body[:budget] + tail + self._image_head

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self._encode(text) for text in prompts]

    def unconditional_prompt(self) -> list[int]:
        return list(self._uncond)

    # ------------------------------------------------------------------ model inputs / outputs
    @property
    def image_block_length(self) -> int:
        """Tokens between ``<boi>`` and ``<eoi>``: H rows of W codes plus a newline each."""
        H, W = self.grid
        return H * (W + 1)

    def image_positions(self, prompt_length: int) -> torch.Tensor:
        """(N,) sequence positions of the codes, row-major, in an input whose prompt has ``prompt_length`` tokens."""
        H, W = self.grid
        rows = torch.arange(H)[:, None] * (W + 1)
        return (prompt_length + rows + torch.arange(W)[None, :]).reshape(-1)

    def build_inputs(self, prompt_ids, prompt_mask, image_ids):
        B, N = image_ids.shape
        H, W = self.grid
        if N != H * W:
            raise ValueError(f"{N} image tokens do not fill the {H}x{W} grid")
        dev, dt = prompt_ids.device, prompt_ids.dtype
        rows = image_ids.to(dt).reshape(B, H, W)
        newlines = torch.full((B, H, 1), self.newline_id, dtype=dt, device=dev)
        block = torch.cat([rows, newlines], dim=2).reshape(B, H * (W + 1))  # (B, H*(W+1))
        tail = torch.tensor([self.eoi_id, self.answer_end_id], dtype=dt, device=dev).expand(B, 2)
        input_ids = torch.cat([prompt_ids, block, tail], dim=1)  # (B, P + H*(W+1) + 2)
        mask = F.pad(prompt_mask.to(torch.long), (0, block.shape[1] + 2), value=1)
        return input_ids, mask

    @classmethod
    def from_model(cls, model, tokenizer, vq_model_name_or_path=None, checkpoint=None, image_size=None,
                   **options) -> "LuminaDiMOOBackbone":
        """The adapter of a Lumina-DiMOO checkpoint: its vocabulary checked, its VQ decoder found in the checkpoint
        (``vqvae/``) or at ``vq_model_name_or_path``, the grid from ``image_size`` (pixels; default 1024)."""
        from .mmada import LUMINA_DIMOO_VOCAB, MMADA_VOCAB

        check_vocabulary(model.config, cls.name, LUMINA_DIMOO_VOCAB, {"mmada": MMADA_VOCAB})
        vq = None
        if vq_model_name_or_path is not None or checkpoint is not None:
            from ..models.vq import find_vq_decoder

            vq = find_vq_decoder(checkpoint, vq_model_name_or_path)
        if image_size is not None:
            h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
            if h % 16 or w % 16 or min(h, w) <= 0:
                raise ValueError(f"image_size={image_size}: Lumina-DiMOO's VQ model makes images whose sides are "
                                 "positive multiples of 16 (e.g. 512, 1024, or 768x1536)")
            options["grid"] = (h // 16, w // 16)
        return cls(tokenizer, vq_decoder=vq, **options)

    def image_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded ids and padding mask -> (B, N, V) codebook logits at the code positions."""
        B, L = input_ids.shape
        P = L - self.image_block_length - 2
        positions = self.image_positions(P).to(input_ids.device)
        o, V = self.image_offset, self.codebook_size
        if self.attention == "mask":
            pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, L): from each row's first token
            kwargs = {"attention_mask": attention_mask, "position_ids": pos}
        else:
            kwargs = {"attention_bias": padding_attention_bias(attention_mask)}
        return image_logits_of(model, input_ids, kwargs, positions, (o, o + V))

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids - self.image_offset

    # ------------------------------------------------------------------ decoding
    def to(self, device) -> "LuminaDiMOOBackbone":
        self.vq_decoder = resolve_vq_decoder(self.vq_decoder, self.vq_kind, device=device, load=True)
        return self

    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        """(B, N) codes -> PIL images: as an (H, W) grid through the VQModel, rounded to uint8."""
        self.vq_decoder = resolve_vq_decoder(self.vq_decoder, self.vq_kind, load=True, family=self.name)
        H, W = self.grid
        return self.vq_decoder.to_pil(codes.long().clamp(0, self.codebook_size - 1).view(-1, H, W))
