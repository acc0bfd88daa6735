"""Visual question answering for DPG-Bench on transformers: BLIP's VQA model.

DPG-Bench's scorer asks ModelScope's mPLUG-large (``damo/mplug_visual-question-answering_coco_large_en``: a ViT-L/14
VQA model fine-tuned on VQA v2) and counts an answer of "yes". transformers ships no mPLUG; the nearest model it
ships is BLIP's VQA model, ``BlipForQuestionAnswering``: default ``Salesforce/blip-vqa-capfilt-large`` (ViT-L,
CapFilt-L pre-training, fine-tuned on VQA v2 + Visual Genome; BSD-3-Clause), ``Salesforce/blip-vqa-base`` the
smaller one. Answers are generated as mPLUG's pipeline does (greedy, free text), not ranked over yes/no.

Per image the vision encoder runs once and its features are shared by all the image's questions (DPG-Bench asks
about 14 per prompt); the question encoding and answer decoding are ``BlipForQuestionAnswering.generate``'s
(vision -> text encoder over the image features -> text decoder from ``bos`` until ``[SEP]``), checked equal to
``generate`` on a tiny random model. Questions are batched only with questions of the same token length, so no
padding enters: in transformers 5.24 the answer decoder's cross-attention drops its mask (``BlipTextLayer`` passes
it as ``attention_mask``, which ``BlipTextSelfAttention`` ignores for cross-attention), so a padded question would
be answered differently from the same question alone. Not checked: the real weights' answers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

DEFAULT_VQA_MODEL = "Salesforce/blip-vqa-capfilt-large"


class BlipVQA:
    """``vqa(images, questions) -> answers[i][j]`` (image i, question j), lower-case text.

    Args:
        model_id: a ``BlipForQuestionAnswering`` checkpoint with its processor (hub id or folder).
        device: None: this process's accelerate device. dtype: "float32" (default) or "bfloat16" / "float16" on GPU.
        batch_size: (image, question) pairs per decoder call.
        max_new_tokens: answer length limit (BLIP answers in a few words).
        local_files_only: never reach the hub.
    """

    def __init__(self, model_id: str = DEFAULT_VQA_MODEL, device: str | torch.device | None = None,
                 dtype: str = "float32", batch_size: int = 64, max_new_tokens: int = 10, local_files_only: bool = False):
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise ValueError(f"dtype={dtype!r}; allowed values: {list(dtypes)}")
        self.model_id, self.dtype, self.batch_size = model_id, dtypes[dtype], int(batch_size)
        self.max_new_tokens, self.local_files_only = int(max_new_tokens), local_files_only
        self._device = None if device is None else torch.device(device)
        self.model = self.processor = None

    @property
    def device(self) -> torch.device:
        if self._device is None:
            from accelerate import PartialState

            self._device = PartialState().device
        return self._device

    def load(self) -> "BlipVQA":
        """Load the model and its processor now (else on the first call); a failure names the model id and why."""
        if self.model is None:
            from transformers import BlipForQuestionAnswering, BlipProcessor

            from ..rewards.hub_loading import ModelLoadError, load_pretrained

            model = load_pretrained(BlipForQuestionAnswering, self.model_id, "blip", "BLIP VQA model for DPG-Bench",
                                    dtype=self.dtype, local_files_only=self.local_files_only)
            try:
                self.processor = BlipProcessor.from_pretrained(self.model_id, local_files_only=self.local_files_only)
            except Exception as e:  # noqa: BLE001
                raise ModelLoadError(f"cannot load the processor of the BLIP VQA model {self.model_id!r}: {e}") from e
            self.model = model.to(self.device).eval()
        return self

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[list[str]]:
        self.load()
        model, proc = self.model, self.processor
        text = model.config.text_config
        pixels = proc.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        image_embeds = model.vision_model(pixel_values=pixels.to(self.device, self.dtype))[0]  # (I, S, D)
        token_ids = [proc.tokenizer(q)["input_ids"] for q in questions]
        by_length: dict[int, list[int]] = {}  # questions of one token length batch without padding
        for j, ids in enumerate(token_ids):
            by_length.setdefault(len(ids), []).append(j)
        answers: dict[tuple[int, int], str] = {}
        for group in by_length.values():
            pairs = [(i, j) for i in range(len(images)) for j in group]
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start:start + self.batch_size]
                ids = torch.tensor([token_ids[j] for _, j in chunk], device=self.device)  # (b, Lq)
                embeds = image_embeds[[i for i, _ in chunk]]  # (b, S, D)
                ones = torch.ones(embeds.shape[:-1], dtype=torch.long, device=self.device)
                question = model.text_encoder(input_ids=ids, attention_mask=torch.ones_like(ids),
                                              encoder_hidden_states=embeds, encoder_attention_mask=ones,
                                              return_dict=False)[0]  # (b, Lq, D)
                bos = torch.full((len(chunk), 1), model.decoder_start_token_id, device=self.device)
                out = model.text_decoder.generate(
                    input_ids=bos, eos_token_id=text.sep_token_id, pad_token_id=text.pad_token_id,
                    encoder_hidden_states=question, encoder_attention_mask=torch.ones_like(ids),
                    max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
                decoded = proc.tokenizer.batch_decode(out[:, bos.shape[1]:], skip_special_tokens=True)  # no start token
                answers.update({pair: a.strip().lower() for pair, a in zip(chunk, decoded)})
        return [[answers[i, j] for j in range(len(questions))] for i in range(len(images))]
