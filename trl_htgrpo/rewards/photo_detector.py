"""GenEval's photograph detector in transformers: Mask2Former COCO instances, colours by CLIP.

GenEval (``djghosh13/geneval: evaluation/evaluate_images.py``) runs mmdet 2.x's Mask2Former Swin-S
COCO instance model (``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco``) and CLIP ViT-L/14. This
detector does the same in process with transformers' ``Mask2FormerForUniversalSegmentation`` (default
``facebook/mask2former-swin-small-coco-instance``: Swin-S, COCO instances, the original authors' weights
converted, not mmdet's) and :class:`~.clip_colors.CLIPColorClassifier`. Per image:

1. Resize keeping the aspect ratio as mmdet's ``Resize(img_scale=(1333, 800), keep_ratio=True)``:
   factor ``min(1333 / long side, 800 / short side)``, size ``int(side * factor + 0.5)``, bilinear;
   normalise with ImageNet's mean/std (the weights' ``PIXEL_MEAN``/``PIXEL_STD``); zero-pad bottom/right
   to a multiple of 32. Images of different sizes are resized this way one by one and batched only with
   images of the same size (so a batch gives what one-by-one gives).
2. Mask logits (Q, H/4, W/4) upsampled bilinearly to the padded input, cropped to the resized image,
   upsampled bilinearly to the original size (mmdet's ``simple_test`` with ``rescale=True``).
3. mmdet's ``MaskFormerFusionHead.instance_postprocess``: ``p = softmax(class logits)[:, :-1]``; the
   ``max_per_image`` (100) best (query, class) pairs; binary mask ``logit > 0``; score
   ``p * mean(sigmoid(logit) over the mask)``; box from the mask ``(x_min, y_min, x_max + 1, y_max + 1)``.
4. Keep scores above ``min_score`` (0.3, GenEval's lower threshold) and per class the ``max_per_class``
   (16) best in GenEval's order (:func:`~.geneval_rules.geneval_order`); the rule engine then applies
   0.3 / 0.9. Class names are GenEval's (:data:`COCO_TO_GENEVAL` maps the three that differ).

Colour is not classified here: each :class:`Detection` carries its mask and ``color=None``;
:meth:`Mask2FormerDetector.classify_colors` classifies the detections the rules ask about.

Validated without the real weights (tiny random-config models, CPU): loading, batching, resizing,
mask/box/score arithmetic, thresholds, class mapping, crops, prompts. Not validated: agreement of the
real checkpoints with GenEval's mmdet numbers (different weights, cv2 vs torch resizing, fp16 CLIP).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .clip_colors import DEFAULT_CLIP, GREY, CLIPColorClassifier
from .geneval_rules import GENEVAL_CLASSES, GENEVAL_COLORS, MAX_OBJECTS, Detection, geneval_order
from .hub_loading import ModelLoadError, load_pretrained

DEFAULT_MODEL = "facebook/mask2former-swin-small-coco-instance"
#: COCO label spellings -> GenEval's (object_names.txt); mmdet, Detectron2 and the hub checkpoints spell the
#: first three the COCO way; the rest are older (VOC-style) spellings some label files use.
COCO_TO_GENEVAL: dict[str, str] = {
    "mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard",
    "motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted plant",
    "diningtable": "dining table", "tvmonitor": "tv", "hair dryer": "hair drier",
}
#: mmdet's img_norm_cfg for the Mask2Former COCO models (RGB, 0..255)
PIXEL_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
PIXEL_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def geneval_names(id2label: Mapping[int, str], label_map: Mapping[str, str | None] | None = None,
                  model_id: str = "the model") -> dict[int, str | None]:
    """Model class id -> GenEval name (None: dropped), via :data:`COCO_TO_GENEVAL` then ``label_map``.

    Raises ``ValueError`` naming the labels that map to no GenEval name, or two labels to one name.
    """
    table = {**COCO_TO_GENEVAL, **(label_map or {})}
    names = {int(i): table.get(label, label) for i, label in id2label.items()}
    unknown = [id2label[i] for i, n in names.items() if n is not None and n not in GENEVAL_CLASSES]
    if unknown:
        raise ValueError(
            f"{model_id!r} has labels that are not GenEval class names: {unknown}; map them with "
            f"label_map={{label: GenEval name or None to drop it}}; GenEval's names: {list(GENEVAL_CLASSES)}"
        )
    seen: dict[str, int] = {}
    for i, n in sorted(names.items()):
        if n is not None and n in seen:
            raise ValueError(f"{model_id!r}: labels {id2label[seen[n]]!r} and {id2label[i]!r} both map to {n!r}")
        if n is not None:
            seen[n] = i
    return names


def _mask2former_class():
    """transformers' Mask2FormerForUniversalSegmentation without its training loss.

    The stock ``__init__`` builds ``Mask2FormerLoss``, which needs scipy (Hungarian matching) even for
    inference; this subclass builds the same modules without it and ignores ``criterion.*`` keys.
    """
    from torch import nn
    from transformers import Mask2FormerForUniversalSegmentation
    from transformers.models.mask2former.modeling_mask2former import Mask2FormerModel, Mask2FormerPreTrainedModel

    class Mask2FormerForInstances(Mask2FormerForUniversalSegmentation):
        _keys_to_ignore_on_load_unexpected = [r"^criterion\."]

        def __init__(self, config):
            Mask2FormerPreTrainedModel.__init__(self, config)
            self.model = Mask2FormerModel(config)
            self.weight_dict = {"loss_cross_entropy": config.class_weight, "loss_mask": config.mask_weight,
                                "loss_dice": config.dice_weight}
            self.class_predictor = nn.Linear(config.hidden_dim, config.num_labels + 1)
            self.post_init()

    return Mask2FormerForInstances


def _default_device() -> torch.device:
    from accelerate import PartialState

    return PartialState().device  # this process's device, the one the trainer's Accelerator uses


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(n, H, W) bool -> (n, 4) float boxes ``x_min, y_min, x_max + 1, y_max + 1`` (mmdet's ``mask2bbox``; empty: zeros)."""
    n, h, w = masks.shape
    cols, rows = masks.any(1), masks.any(2)  # (n, W), (n, H)
    x0 = cols.float().argmax(1)
    x1 = w - cols.flip(1).float().argmax(1)
    y0 = rows.float().argmax(1)
    y1 = h - rows.flip(1).float().argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(cols.any(1)[:, None], boxes, torch.zeros_like(boxes))


def instance_scores(class_logits: torch.Tensor, mask_logits: torch.Tensor, max_per_image: int = 100):
    """mmdet's instance post-processing of one image.

    class_logits: (Q, C + 1), the last column "no object"; mask_logits: (Q, H, W) at the image's size.
    Returns (queries (K,), labels (K,), scores (K,)) of the ``max_per_image`` best (query, class) pairs
    in (query, class) order, and the (Q, H, W) bool masks.
    """
    Q, C1 = class_logits.shape
    C = C1 - 1
    probs = class_logits.float().softmax(-1)[:, :-1]  # (Q, C)
    _, top = probs.flatten().topk(min(max_per_image, Q * C), sorted=False)
    top = top.sort().values  # (K,) deterministic (query, class) order
    queries, labels = top // C, top % C
    binary = mask_logits > 0  # (Q, H, W)
    mask_score = (mask_logits.float().sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)  # (Q,)
    scores = probs.flatten()[top] * mask_score[queries]  # (K,)
    return queries, labels, scores, binary


class Mask2FormerDetector:
    """GenEval's detector of photographs (module docstring): ``detector(image) -> list[Detection]``.

    Args:
        model_id: a Mask2Former COCO instance-segmentation checkpoint (hub id or folder).
        clip_model_id: the CLIP checkpoint for colours (GenEval: OpenAI's ViT-L/14).
        device: where both models run; None: this process's accelerate device (the trainer's).
        dtype: "float32" (default), or "bfloat16" / "float16" on a GPU.
        batch_size: images per Mask2Former forward; clip_batch_size: crops per CLIP forward.
        scale: mmdet's ``img_scale`` (long, short) limits of the resize; (1333, 800) as GenEval's config.
        max_per_image: (query, class) pairs kept per image before thresholds (mmdet's 100).
        min_score: detections at or below are dropped here (keep it <= the reward's thresholds; 0.3).
        max_per_class: detections kept per class (GenEval's 16).
        label_map: extra model label -> GenEval name (None drops the label) for other checkpoints.
        background: the grey behind colour crops (GenEval's ``#999``).
        local_files_only: never reach the hub.

    Both models load on first use. A model that cannot be loaded raises
    :class:`~.hub_loading.ModelLoadError` naming its id and why (offline, missing, wrong architecture).
    """

    colors: tuple[str, ...] = GENEVAL_COLORS
    threshold: float = 0.3  # GenEval's THRESHOLD
    counting_threshold: float = 0.9  # GenEval's COUNTING_THRESHOLD

    def __init__(self, model_id: str = DEFAULT_MODEL, clip_model_id: str = DEFAULT_CLIP,
                 device: str | torch.device | None = None, dtype: str | torch.dtype = "float32",
                 batch_size: int = 8, clip_batch_size: int = 64, scale: tuple[int, int] = (1333, 800),
                 max_per_image: int = 100, min_score: float = 0.3, max_per_class: int = MAX_OBJECTS,
                 label_map: Mapping[str, str | None] | None = None, background: tuple[int, int, int] = GREY,
                 local_files_only: bool = False):
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f"dtype={dtype!r}; allowed values: {list(_DTYPES)}")
            dtype = _DTYPES[dtype]
        self.model_id, self.clip_model_id = model_id, clip_model_id
        self._device = None if device is None else torch.device(device)
        self.dtype, self.batch_size, self.scale = dtype, int(batch_size), (max(scale), min(scale))
        self.max_per_image, self.min_score, self.max_per_class = max_per_image, min_score, max_per_class
        self.label_map, self.local_files_only = dict(label_map or {}), local_files_only
        self._clip_options = dict(batch_size=clip_batch_size, background=background, local_files_only=local_files_only)
        self._model = self._names = self._colors = None

    # ------------------------------------------------------------------ loading
    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = _default_device()
        if self.dtype != torch.float32 and self._device.type == "cpu":
            raise ValueError(f"dtype {self.dtype} is for a GPU; on CPU use dtype='float32'")
        return self._device

    @property
    def names(self) -> dict[int, str | None]:
        """Model class id -> GenEval name (None: dropped); reads only the checkpoint's config."""
        if self._names is None:
            from transformers import Mask2FormerConfig

            config = load_pretrained(Mask2FormerConfig, self.model_id, "mask2former", "Mask2Former instance-segmentation model",
                                     local_files_only=self.local_files_only)
            self._names = geneval_names(config.id2label, self.label_map, self.model_id)
        return self._names

    @property
    def classes(self) -> tuple[str, ...]:
        """The GenEval class names this detector reports (validates metadata)."""
        return tuple(n for _, n in sorted(self.names.items()) if n is not None)

    def load(self) -> "Mask2FormerDetector":
        """Load both models now (the trainer calls this at start, so a missing model fails before training)."""
        self._load()
        self.color_classifier._load()
        return self

    def _load(self):
        if self._model is None:
            names, device = self.names, self.device
            model = load_pretrained(_mask2former_class(), self.model_id, "mask2former",
                                    "Mask2Former instance-segmentation model", dtype=self.dtype,
                                    local_files_only=self.local_files_only)
            if len(names) != model.config.num_labels:
                raise ModelLoadError(f"{self.model_id!r}: id2label has {len(names)} labels, num_labels is {model.config.num_labels}")
            self._model = model.to(device).eval()
        return self._model

    @property
    def color_classifier(self) -> CLIPColorClassifier:
        if self._colors is None:
            self._colors = CLIPColorClassifier(self.clip_model_id, device=self.device, dtype=self.dtype, **self._clip_options)
        return self._colors

    # ------------------------------------------------------------------ detection
    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """mmdet's keep-ratio rescale of (height, width) to ``scale``."""
        long_max, short_max = self.scale
        factor = min(long_max / max(height, width), short_max / min(height, width))
        return int(height * factor + 0.5), int(width * factor + 0.5)

    def _pixels(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, tuple[int, int]]:
        """Same-size images -> (B, 3, Hp, Wp) normalised, zero-padded to multiples of 32, and the resized (h, w)."""
        x = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images]))  # (B, H, W, 3) uint8
        x = x.to(self.device).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
        h, w = self.resized_size(*x.shape[-2:])
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        mean = torch.tensor(PIXEL_MEAN, device=x.device)[:, None, None]
        std = torch.tensor(PIXEL_STD, device=x.device)[:, None, None]
        x = (x - mean) / std
        x = F.pad(x, (0, -w % 32, 0, -h % 32))  # bottom/right, value 0 after normalisation (mmdet's Pad)
        return x, (h, w)

    @torch.no_grad()
    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """Detections of each image (pixel boxes from masks, scores above ``min_score``, ``color=None``)."""
        for k, im in enumerate(images):
            if not isinstance(im, Image.Image):
                raise TypeError(f"image {k} is {type(im).__name__}; the mask2former detector takes PIL images")
        model, names = self._load(), self.names
        out: list[list[Detection] | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, im in enumerate(images):
            groups.setdefault((im.height, im.width), []).append(k)
        for (H, W), idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                pixels, (h, w) = self._pixels([images[k] for k in chunk])
                res = model(pixel_values=pixels.to(self.dtype))
                for b, k in enumerate(chunk):  # one image at a time: (Q, Hp, Wp) float masks are large
                    m = F.interpolate(res.masks_queries_logits[b:b + 1].float(), size=pixels.shape[-2:],
                                      mode="bilinear", align_corners=False)[:, :, :h, :w]  # (1, Q, h, w)
                    if (h, w) != (H, W):
                        m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)  # (1, Q, H, W)
                    out[k] = self._detections(res.class_queries_logits[b], m[0], names)
        return out  # type: ignore[return-value]

    def _detections(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, names) -> list[Detection]:
        queries, labels, scores, binary = instance_scores(class_logits, mask_logits, self.max_per_image)
        above = (scores > self.min_score).nonzero().flatten().tolist()
        labels_, scores_ = labels.tolist(), scores.tolist()
        by_class: dict[str, list[int]] = {}
        for j in above:
            if names[labels_[j]] is not None:
                by_class.setdefault(names[labels_[j]], []).append(j)
        chosen: set[int] = set()
        for js in by_class.values():
            chosen.update(js[o] for o in geneval_order([scores_[j] for j in js])[: self.max_per_class])
        if not chosen:
            return []
        order = sorted(chosen)  # (query, class) order
        obj_masks = binary[queries[order]]  # (n, H, W)
        boxes = mask_boxes(obj_masks).tolist()
        obj_masks = obj_masks.cpu().numpy()
        return [Detection(cls=names[labels_[j]], box=tuple(boxes[n]), score=scores_[j], mask=obj_masks[n])
                for n, j in enumerate(order)]

    def __call__(self, image: Image.Image) -> list[Detection]:
        return self.detect([image])[0]

    def classify_colors(self, images: Sequence[Image.Image], detections: Sequence[Sequence[Detection]]) -> list[list[str]]:
        """GenEval's colour of each given detection of each image (CLIP on the masked crop over grey)."""
        return self.color_classifier(images, detections)
