"""Helpers shared by the backbone adapters: attention bias from a padding mask, unwrapping, decoder devices
and the conversion of decoded images to PIL."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def padding_attention_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) padding mask (1 = token) -> (B, 1, L, L) bool: position i may attend to j iff both are tokens.

    Exactly MMaDA's ``t2i_generate`` (and Lumina-DiMOO's wrapper): ``m[:, :, None] & m[:, None, :]``.
    Rows of padding positions are all False; LLaDA's forward turns False into the dtype's minimum
    (not -inf), so those rows stay finite and nothing reads them.
    """
    m = attention_mask.bool()
    return (m[:, :, None] & m[:, None, :]).unsqueeze(1)


def unwrap_model(model):
    """The user's module under DDP / DeepSpeed (``.module``) and PEFT (``get_base_model``) wrappers."""
    for _ in range(8):
        if isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        elif callable(getattr(model, "get_base_model", None)):
            inner = model.get_base_model()
            if inner is model:
                break
            model = inner
        else:
            break
    return model


def decoder_device(decoder) -> torch.device | None:
    """Device of a VQ decoder given as an nn.Module or a bound method of one (None if unknown)."""
    owner = decoder if isinstance(decoder, torch.nn.Module) else getattr(decoder, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        p = next(owner.parameters(), None)
        if p is not None:
            return p.device
    return None


def images_to_pil(images: torch.Tensor, value_range: tuple[float, float]) -> list[Image.Image]:
    """(B, 3, H, W) float images in ``value_range`` -> PIL RGB images."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"the VQ decoder must return (B, 3, H, W) images, got shape {tuple(images.shape)}")
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0.0, 1.0)
    arr = (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]


def adapters_disabled(model) -> bool:
    """Whether a PEFT model's adapters are switched off or its ``"ref"`` adapter is active: how TRL scores the
    KL reference of a PEFT policy (``trl.trainer.utils.use_adapter``)."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no PEFT, no adapters
        return False
    model = getattr(model, "module", model)  # DDP / DeepSpeed engine
    if not callable(getattr(model, "get_base_model", None)):
        return False
    if getattr(model, "active_adapter", None) == "ref":
        return True
    return any(m.disable_adapters for m in model.modules() if isinstance(m, BaseTunerLayer))
