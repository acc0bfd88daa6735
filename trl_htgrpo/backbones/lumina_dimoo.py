"""Backbone adapter of Lumina-DiMOO (``Alpha-VLLM/Lumina-DiMOO``, ``LLaDAForMultiModalGeneration``), text-to-image.

Sequence (``inference/inference_t2i.py``, ``utils/prompt_utils.py``, ``utils/image_utils.py: add_break_line``)::

    tok("<system>Generate an image according to the text prompt.</system><user>{prompt}</user>")
    <answer-start 126354> <boi 126349>
    c(0,0) .. c(0,W-1) <newline 126084>  ...  c(H-1,0) .. c(H-1,W-1) <newline 126084>
    <eoi 126350> <answer-end 126355>

with image token id = VQ code + 126356 and mask 126336. The unconditional prompt keeps the system part and
replaces the text by ``<uncondition>`` (126351). The N = H * W codes are not contiguous: ``build_inputs`` lays
them out in rows, each followed by a fixed (never masked) newline, and ``image_logits`` reads the code
positions only. Images decode with the diffusers ``VQModel`` in the checkpoint's ``vqvae`` subfolder.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from .common import decoder_device, images_to_pil, padding_attention_bias, unwrap_model

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
        vq_decoder: a diffusers ``VQModel`` (the checkpoint's ``subfolder="vqvae"``), or a path / hub id to load
            one from lazily (``VQModel.from_pretrained(path, subfolder="vqvae")``, needs diffusers), or any
            callable ``codes (B, N) long -> images (B, 3, H, W) float in [0, 1]``. Only ``decode_images`` uses it.
        grid: (H, W) code grid; 512 px -> (32, 32), 1024 px -> (64, 64) (16x downsampling). N = H * W.
        max_prompt_length: prompt tokens (template, answer-start and boi included) beyond which the user text
            is cut: 1026 = the 1024 instruction tokens of ``train/train.py`` (``truncation=True, max_length=1024``)
            + ``<answer-start> <boi>``. The inference scripts do not truncate.
        attention: how ``forward_logits`` calls the model. ``"infer"``: Lumina-DiMOO's own
            ``LLaDAForMultiModalGeneration.forward(input_ids, infer=True)``, which builds its padding bias only
            for ragged *lists* and ignores ``attention_mask``: rows are run in groups of equal unpadded length,
            without padding, and the logits are put back in the left-padded layout. ``"bias"``: a model that
            takes ``attention_bias=bool[B, 1, L, L]`` (the LLaDA ``LLaDAModelLM`` of both repositories).
            ``"mask"``: a model that takes the (B, L) ``attention_mask`` as bidirectional padding. ``"auto"``:
            ``"infer"`` when the unwrapped model's forward has an ``infer`` parameter, else ``"bias"``.
        system_prompt: the system text of the template.
        codebook_size: V, 8192.
    """

    name = "lumina_dimoo"
    detector = "mask2former"  # GenEval detector of photographs (trl_htgrpo.rewards.DETECTORS)
    #: Lumina-DiMOO's published loop (generators/image_generation_generator.py) with inference_t2i.py's defaults
    sampling_defaults = {"sampler": "lumina_dimoo", "diffusion_steps": 64, "guidance_scale": 4.0}

    def __init__(
        self,
        tokenizer,
        vq_decoder=None,
        grid: tuple[int, int] = (32, 32),
        max_prompt_length: int = 1026,
        attention: str = "auto",
        system_prompt: str = T2I_SYSTEM_PROMPT,
        codebook_size: int = 8192,
    ):
        if attention not in ("auto", "infer", "bias", "mask"):
            raise ValueError(f"attention must be 'auto', 'infer', 'bias' or 'mask', got {attention!r}")
        H, W = (int(g) for g in grid)
        if H < 1 or W < 1:
            raise ValueError(f"grid must be two positive ints, got {grid!r}")
        t = LUMINA_DIMOO_TOKENS
        self.tokenizer = tokenizer
        self.vq_decoder = vq_decoder
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

    def image_logits(self, logits: torch.Tensor, prompt_length: int) -> torch.Tensor:
        H, W = self.grid
        P, o, V = prompt_length, self.image_offset, self.codebook_size
        if logits.shape[1] != P + self.image_block_length + 2:
            raise ValueError(
                f"logits of length {logits.shape[1]} do not hold prompt {P} + image block {self.image_block_length} + 2"
            )
        block = logits[:, P : P + self.image_block_length, o : o + V]  # (B, H*(W+1), V)
        return block.reshape(logits.shape[0], H, W + 1, V)[:, :, :W].reshape(logits.shape[0], H * W, V)  # (B, N, V)

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids - self.image_offset

    # ------------------------------------------------------------------ forward
    def _mode(self, model) -> str:
        if self.attention != "auto":
            return self.attention
        try:
            params = inspect.signature(unwrap_model(model).forward).parameters
        except (TypeError, ValueError):
            return "bias"
        return "infer" if "infer" in params else "bias"

    def forward_logits(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded ids and padding mask -> (B, L, vocab) logits (zeros at padding in ``"infer"`` mode)."""
        mode = self._mode(model)
        if mode == "mask":
            return model(input_ids=input_ids, attention_mask=attention_mask).logits
        if mode == "bias":
            return model(input_ids=input_ids, attention_bias=padding_attention_bias(attention_mask)).logits
        B, L = input_ids.shape
        m = attention_mask.bool()
        lengths = m.sum(1)  # (B,)
        if not torch.equal(m, torch.arange(L, device=m.device)[None, :] >= (L - lengths)[:, None]):
            raise ValueError("attention='infer' needs left padding: every row's tokens must be one suffix")
        outs, order = [], []
        for n in sorted(set(lengths.tolist()), reverse=True):
            rows = (lengths == n).nonzero(as_tuple=True)[0]
            logits = model(input_ids=input_ids[rows, L - n :], infer=True).logits  # (b, n, vocab), no padding
            outs.append(F.pad(logits, (0, 0, L - n, 0)))
            order.append(rows)
        inverse = torch.empty(B, dtype=torch.long, device=input_ids.device)
        inverse[torch.cat(order)] = torch.arange(B, device=input_ids.device)
        return torch.cat(outs)[inverse.to(outs[0].device)]

    # ------------------------------------------------------------------ decoding
    def _vqmodel(self):
        if isinstance(self.vq_decoder, str):
            try:
                from diffusers import VQModel
            except ImportError as e:
                raise ImportError(
                    "decoding Lumina-DiMOO images from a path needs diffusers (`pip install diffusers`), or pass "
                    "a loaded VQModel / a callable as vq_decoder"
                ) from e
            self.vq_decoder = VQModel.from_pretrained(self.vq_decoder, subfolder="vqvae").eval()
        return self.vq_decoder

    def decode_images(self, codes: torch.Tensor) -> list[Image.Image]:
        if self.vq_decoder is None:
            raise RuntimeError(
                "LuminaDiMOOBackbone has no VQ decoder, so it cannot turn image tokens into pictures. Lumina-DiMOO "
                "decodes with the diffusers VQModel in its checkpoint's 'vqvae' subfolder: install diffusers and "
                "pass `LuminaDiMOOBackbone(tokenizer, vq_decoder=VQModel.from_pretrained(ckpt, subfolder='vqvae'))` "
                "or `vq_decoder=ckpt` (a local path or hub id, loaded on first use), or any callable mapping codes "
                "(B, N) to images (B, 3, H, W) in [0, 1]. With backbone_for(), register a factory that sets it."
            )
        dec = self._vqmodel()
        B = codes.shape[0]
        H, W = self.grid
        codes = codes.long().clamp(0, self.codebook_size - 1)
        device = decoder_device(dec)
        if device is not None:
            codes = codes.to(device)
        with torch.no_grad():
            if callable(getattr(dec, "decode", None)) and hasattr(getattr(dec, "config", None), "latent_channels"):
                # diffusers VQModel, as utils/image_utils.py: decode_vq_to_image (there with batch 1)
                out = dec.decode(codes.view(B, H, W), force_not_quantize=True,
                                 shape=(B, H, W, dec.config.latent_channels))
                images = getattr(out, "sample", out)
            else:
                images = dec(codes)
        return images_to_pil(images, (0.0, 1.0))
