"""GenEval's colour classification: CLIP zero-shot on an object's masked crop over grey.

``djghosh13/geneval: evaluation/evaluate_images.py`` (``ImageCrops``, ``color_classification``), with
``clip_benchmark``'s ``zero_shot_classifier`` / ``run_classification`` and open_clip's eval transform:

1. Crop: the image composited over a plain grey ``#999`` (153, 153, 153) through the object's mask
   (``Image.composite(image, grey, mask)``), then cropped to its box (``image.crop(box)``).
2. Transform (open_clip ``ViT-L-14``, ``pretrained="openai"``): resize the short side to 224
   (bicubic, long side ``int(224 * long / short)``), centre crop 224 (offsets ``round((size - 224) / 2)``),
   scale to [0, 1], normalise with OpenAI's CLIP mean and std.
3. Classifier, one per class name: for each of the ten colours ``c`` the three prompts
   ``"a photo of a {c} {cls}"``, ``"a photo of a {c}-colored {cls}"``, ``"a photo of a {c} object"``;
   text embeddings L2-normalised, averaged over the prompts, normalised again -> ``W`` (10, D).
4. Colour = ``argmax_c 100 * normalize(image_embedding) . W_c`` (first maximum on ties).

The crop is taken from the box first and composited there; compositing is per pixel, so this equals
GenEval's composite-then-crop. GenEval runs CLIP under fp16 autocast on CUDA; here the dtype is a
choice (float32 by default).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .geneval_rules import GENEVAL_COLORS, Detection
from .hub_loading import load_pretrained

#: GenEval's three prompt templates (``{color}``: one of the ten colours, ``{cls}``: the clause's class name)
COLOR_TEMPLATES: tuple[str, ...] = (
    "a photo of a {color} {cls}",
    "a photo of a {color}-colored {cls}",
    "a photo of a {color} object",
)
#: GenEval's crop background (``bgcolor="#999"``)
GREY: tuple[int, int, int] = (153, 153, 153)
#: OpenAI CLIP's normalisation (open_clip's OPENAI_DATASET_MEAN / _STD)
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_CLIP = "openai/clip-vit-large-patch14"  # ViT-L/14 at 224 px: the weights of open_clip's ("ViT-L-14", "openai")


def masked_crop(image: Image.Image, det: Detection, background: tuple[int, int, int] = GREY) -> Image.Image:
    """The object of ``det`` over ``background``, cropped to its box (GenEval's ``ImageCrops``).

    Without a mask the crop is the plain box, as GenEval's ``mask is None`` branch. PIL rounds a float box.
    """
    image = image.convert("RGB")
    crop = image.crop(det.box)
    if det.mask is None:
        return crop
    mask = np.asarray(det.mask, dtype=bool)
    if mask.shape != (image.height, image.width):
        raise ValueError(f"detection mask has shape {mask.shape}, the image is {image.height}x{image.width} (H x W)")
    return Image.composite(crop, Image.new("RGB", crop.size, background), Image.fromarray(mask).crop(det.box))


def clip_transform(crop: Image.Image, size: int, mean: Sequence[float] = CLIP_MEAN,
                   std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """open_clip's eval transform (torchvision Resize(size, bicubic), CenterCrop(size), ToTensor, Normalize) -> (3, size, size)."""
    w, h = crop.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    img = crop.convert("RGB").resize((new_w, new_h), Image.BICUBIC)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, size, size)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def _features(out: Any) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the projected embedding; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPColorClassifier:
    """GenEval's colour of each detection (module docstring), batched over crops of many images.

    Args:
        model_id: a CLIP checkpoint (hub id or folder) with its tokenizer; GenEval uses OpenAI's ViT-L/14.
        device, dtype: where and in which precision CLIP runs.
        batch_size: crops per CLIP forward.
        colors, templates, background: GenEval's ten colours, three prompts and ``#999`` grey.
        local_files_only: never reach the hub.

    Loads lazily on first use; text classifiers are cached per class name, as GenEval caches them.
    """

    def __init__(self, model_id: str = DEFAULT_CLIP, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, batch_size: int = 64,
                 colors: Sequence[str] = GENEVAL_COLORS, templates: Sequence[str] = COLOR_TEMPLATES,
                 background: tuple[int, int, int] = GREY, local_files_only: bool = False):
        self.model_id, self.device, self.dtype = model_id, torch.device(device), dtype
        self.batch_size, self.colors, self.templates = batch_size, tuple(colors), tuple(templates)
        self.background, self.local_files_only = tuple(background), local_files_only
        self._model = self._tokenizer = None
        self._classifiers: dict[str, torch.Tensor] = {}

    def _load(self):
        if self._model is None:
            from transformers import AutoTokenizer, CLIPModel

            role = "CLIP model for GenEval's colour classification"
            self._model = load_pretrained(CLIPModel, self.model_id, "clip", role, dtype=self.dtype,
                                          local_files_only=self.local_files_only).to(self.device).eval()
            self._tokenizer = load_pretrained(AutoTokenizer, self.model_id, "clip", f"tokenizer of the {role}",
                                              local_files_only=self.local_files_only)
        return self._model

    @property
    def image_size(self) -> int:
        return int(self._load().config.vision_config.image_size)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), D) projected text embeddings, float32."""
        model = self._load()
        enc = self._tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        return _features(model.get_text_features(input_ids=enc.input_ids, attention_mask=enc.attention_mask)).float()

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) normalised pixels -> (n, D) projected image embeddings, float32."""
        model = self._load()
        return _features(model.get_image_features(pixel_values=pixel_values.to(self.device, self.dtype))).float()

    def classifier(self, cls: str) -> torch.Tensor:
        """(len(colors), D) zero-shot weights of class name ``cls``: mean of normalised prompt embeddings, renormalised."""
        if cls not in self._classifiers:
            texts = [t.format(color=c, cls=cls) for c in self.colors for t in self.templates]
            emb = torch.nn.functional.normalize(self.encode_text(texts), dim=-1)  # (C * P, D)
            w = emb.view(len(self.colors), len(self.templates), -1).mean(1)  # (C, D)
            self._classifiers[cls] = w / w.norm(dim=-1, keepdim=True)
        return self._classifiers[cls]

    def __call__(self, images: Sequence[Image.Image], detections: Sequence[Sequence[Detection]]) -> list[list[str]]:
        """For each image, the colour of each of its given detections (each named by its own class in the prompts)."""
        if len(images) != len(detections):
            raise ValueError(f"got {len(images)} images for {len(detections)} lists of detections")
        items = [(i, d) for i, dets in enumerate(detections) for d in dets]
        out: list[list[str]] = [[] for _ in images]
        if not items:
            return out
        size = self.image_size
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            pixels = torch.stack([clip_transform(masked_crop(images[i], d, self.background), size) for i, d in chunk])
            feats = torch.nn.functional.normalize(self.encode_images(pixels), dim=-1)  # (n, D)
            weights = torch.stack([self.classifier(d.cls) for _, d in chunk])  # (n, C, D)
            logits = 100.0 * torch.einsum("nd,ncd->nc", feats, weights)  # (n, C)
            for (i, _), k in zip(chunk, logits.argmax(-1).tolist()):
                out[i].append(self.colors[k])
        return out
