"""What every hub-weight scorer shares: lazy loading with errors that name the model, batching, device and dtype,
the prompt text of a TRL prompt, and the published image preprocessing written without torchvision.

A scorer is a TRL reward function ``scorer(prompts, completions, **columns) -> list[float]`` over PIL images. It
loads its weights on its first call (so building a trainer with ten rewards costs nothing until they score),
on the current CUDA device in bf16 (fp16 where bf16 is not supported) or on the CPU in fp32. Scores come back
as float32 arithmetic on the embeddings whatever the encoders' dtype.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from .hub_loading import ModelLoadError, load_reason
from PIL import Image

logger = logging.getLogger(__name__)

#: CLIP's normalisation (OpenAI), used by CLIP ViT-L/14, OpenCLIP ViT-H-14 (HPSv2) and BLIP (ImageReward)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


#: the one error of a reward or detector model that cannot be loaded (:mod:`.hub_loading`)
RewardModelLoadError = ModelLoadError


def prompt_text(prompt: Any) -> str:
    """The text of one TRL prompt: a string, or a conversation whose last user turn is the caption."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict) and "content" in prompt:
        prompt = [prompt]
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) for m in prompt):
        for message in reversed(prompt):
            if message.get("role", "user") == "user":
                content = message.get("content", "")
                if isinstance(content, str):
                    return content
                return " ".join(part.get("text", "") for part in content
                                if isinstance(part, dict) and part.get("type") == "text")
    raise TypeError(f"cannot read a prompt text from {type(prompt).__name__} {prompt!r:.80}; expected a string or "
                    "a list of chat messages")


def default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None: bf16 (fp16 without bf16 support) on CUDA, fp32 elsewhere; or a name such as "float16"."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, names.get(dtype, dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32")
    return value


class HubScorer:
    """Base of the scorers: ``__call__`` checks the inputs, loads once, scores in batches under inference mode.

    Subclasses set ``name`` and implement ``_load()`` (set up the models; may raise anything, which becomes a
    :class:`RewardModelLoadError` naming ``model_id``) and ``_score_batch(texts, images) -> (b,) tensor``.
    """

    name: ClassVar[str]

    def __init__(self, model_id: str, *, batch_size: int = 16, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None, revision: str | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id, self.batch_size, self.revision = model_id, batch_size, revision
        self._device_arg, self._dtype_arg = device, dtype
        self._loaded = False
        self.__name__ = self.name

    @property
    def device(self) -> torch.device:
        return torch.device(self._device_arg) if self._device_arg is not None else default_device()

    @property
    def dtype(self) -> torch.dtype:
        return resolve_dtype(self._dtype_arg, self.device)

    def load(self) -> "HubScorer":
        """Load the weights now (else on the first call)."""
        if not self._loaded:
            try:
                self._load()
            except RewardModelLoadError:
                raise
            except Exception as e:
                raise RewardModelLoadError(f"{type(self).__name__} could not load {self._what_loads()} "
                                           f"({load_reason(e)}): {type(e).__name__}: {e}") from e
            self._loaded = True
        return self

    def _what_loads(self) -> str:
        return repr(self.model_id)

    def _load(self) -> None:
        raise NotImplementedError

    def _score_batch(self, texts: list[str], images: list[Image.Image]) -> torch.Tensor | list[float | None]:
        """(b,) scores of one batch."""
        raise NotImplementedError

    def score(self, prompts: Sequence[Any], images: Sequence[Image.Image]) -> list[float | None]:
        """One score per (prompt, image), computed ``batch_size`` images at a time."""
        if len(prompts) != len(images):
            raise ValueError(f"{self.name}: {len(prompts)} prompts for {len(images)} images")
        for i, im in enumerate(images):
            if not isinstance(im, Image.Image):
                raise TypeError(f"{self.name} scores PIL images; completion {i} is {type(im).__name__} (train with "
                                "HTGRPOTrainer, which decodes image tokens to PIL images)")
        texts = [prompt_text(p) for p in prompts]
        self.load()
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                scores = self._score_batch(texts[start:start + self.batch_size],
                                           [im.convert("RGB") for im in images[start:start + self.batch_size]])
                out += scores.float().cpu().tolist() if isinstance(scores, torch.Tensor) else list(scores)
        return out

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Image.Image], **kwargs: Any) -> list[float]:
        return self.score(prompts, completions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r})"


# -- loading helpers ------------------------------------------------------------------------------------------------

def hub_file(repo_or_path: str, filename: str | None, revision: str | None = None) -> str:
    """A local file: ``repo_or_path`` itself if it is a file, ``repo_or_path/filename`` if a folder, else the hub
    file ``filename`` of the repository ``repo_or_path`` (downloaded or from the cache)."""
    import os

    if os.path.isfile(repo_or_path):
        return repo_or_path
    if os.path.isdir(repo_or_path):
        path = os.path.join(repo_or_path, filename or "")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no file {filename!r} in the folder {repo_or_path}")
        return path
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_or_path, filename, revision=revision)


def load_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Load a converted state dict into a module built on the meta device (``assign``): every parameter and
    persistent buffer must be given with its shape; non-persistent ``position_ids`` buffers are rebuilt."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise ValueError(f"wrong architecture: {what} lacks {len(missing)} weights, e.g. {missing[:4]}")
    bad = [(k, tuple(state_dict[k].shape), tuple(v.shape)) for k, v in expected.items()
           if tuple(state_dict[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"wrong architecture: size mismatch in {what}, e.g. {bad[:3]} (checkpoint vs model)")
    module.load_state_dict({k: state_dict[k] for k in expected}, strict=True, assign=True)
    for name, buf in list(module.named_buffers()):
        if buf.is_meta:
            if not name.endswith("position_ids"):
                raise ValueError(f"{what}: buffer {name} was not in the checkpoint")
            owner = module.get_submodule(name.rpartition(".")[0])
            owner.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(buf.shape).clone(),
                                  persistent=False)


def on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module without allocating or initialising its weights (they come from a checkpoint)."""
    with torch.device("meta"):
        return build()


# -- image preprocessing (the published transforms, on PIL and torch only) ---------------------------------------

def _normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """torchvision's ``ToTensor``: (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def resize_center_crop(images: Sequence[Image.Image], size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """OpenAI CLIP's and BLIP's ``Compose([Resize(size, BICUBIC), CenterCrop(size), ToTensor(), Normalize])`` on
    PIL images, as torchvision computes it: shorter side to ``size`` (longer ``int(size * long / short)``), PIL
    bicubic, then the centred crop at ``round((H - size) / 2)``. Returns (B, 3, size, size)."""
    out = []
    for image in images:
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), Image.BICUBIC)
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
        out.append(_normalize(to_tensor(image), mean, std))
    return torch.stack(out)


def resize_longest_pad(images: Sequence[Image.Image], size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """HPSv2's evaluation transform (``image_transform(..., resize_longest_max=True)``: ``ToTensor``,
    ``ResizeMaxSize(size)``, ``Normalize``): the longer side to ``size`` with torchvision's tensor bicubic
    (``interpolate(mode="bicubic", antialias=True)``, no clamping), new sides ``round(dim * scale)``, then zero
    padding to a square, split as ``pad // 2`` before and the rest after. Returns (B, 3, size, size)."""
    out = []
    for image in images:
        x = to_tensor(image)  # (3, H, W)
        h, w = x.shape[1:]
        scale = size / float(max(h, w))
        if scale != 1.0:
            new_h, new_w = round(h * scale), round(w * scale)
            x = torch.nn.functional.interpolate(x[None], size=(new_h, new_w), mode="bicubic", align_corners=False,
                                                antialias=True)[0]
            pad_h, pad_w = size - new_h, size - new_w
            x = torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        out.append(_normalize(x, mean, std))
    return torch.stack(out)
