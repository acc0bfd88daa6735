"""Loading a checkpoint for evaluation (model, tokenizer, backbone on a device) and the manifest of a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..backbones import backbone_for
from ..plugins import load_plugins, resolve_model_name
from .outputs import model_identity

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    backbone: Any
    name_or_path: str  # as given
    path: str  # the folder or hub id it was loaded from
    device: torch.device
    dtype: str


def resolve_device(device: str | None) -> torch.device:
    """None: the first GPU when there is one, else the CPU."""
    return torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``"auto"``: bfloat16 on a GPU (MMaDA's and Lumina-DiMOO's inference scripts load in bfloat16), float32 on CPU."""
    if dtype == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; allowed values: ['auto', {', '.join(repr(d) for d in DTYPES)}]")
    return dtype


def load_for_evaluation(model_name_or_path: str, vq_model_name_or_path: str | None = None,
                        image_size: int | None = None, device: str | None = None, dtype: str = "auto") -> LoadedModel:
    """The model (in eval mode, on ``device``), its tokenizer and its backbone adapter with its VQ decoder.

    A checkpoint without a decoder (MMaDA) fails here, naming ``--vq_model_name_or_path`` (the backbone's error)."""
    from transformers import AutoModel, AutoTokenizer

    load_plugins()
    path = resolve_model_name(model_name_or_path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    model = AutoModel.from_pretrained(path, dtype=DTYPES[dt])
    tokenizer = AutoTokenizer.from_pretrained(path)
    backbone = backbone_for(model, tokenizer, checkpoint=path, vq_model_name_or_path=vq_model_name_or_path,
                            image_size=image_size)
    model.to(dev).eval()
    backbone.to(dev)
    return LoadedModel(model, tokenizer, backbone, model_name_or_path, str(path), dev, dt)


def run_manifest(benchmark: str, loaded: LoadedModel, settings: Mapping[str, Any], seed: int, images_per_prompt: int,
                 **info: Any) -> dict[str, Any]:
    """The manifest of a benchmark run (:mod:`.outputs`): what decides whether a folder may be resumed
    (``identity``), and what is recorded for the reader (model path, decoder, library version, ...)."""
    from .. import __version__

    bb = loaded.backbone
    identity = {"benchmark": benchmark, **model_identity(loaded.model), "dtype": loaded.dtype,
                "image_size": {"num_image_tokens": int(bb.num_image_tokens),
                               "grid": list(getattr(bb, "grid", ()) or ()) or None},
                "sampler": dict(settings), "seed": int(seed), "images_per_prompt": int(images_per_prompt)}
    return {"identity": identity, "model": loaded.name_or_path, "model_path": loaded.path, "backbone": bb.name,
            "trl_htgrpo": __version__, **info}
