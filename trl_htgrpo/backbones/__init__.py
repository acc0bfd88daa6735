"""Backbone adapters: one per model family, chosen from the model's ``config.model_type`` by a registry."""

from __future__ import annotations

from typing import Any, Callable

from ..plugins import load_plugins
from .base import Backbone
from .lumina_dimoo import LuminaDiMOOBackbone
from .mmada import MMaDABackbone

#: model_type -> adapter factory ``factory(model, tokenizer, **options) -> Backbone`` (options: ``checkpoint``, the
#: folder the model came from, ``vq_model_name_or_path``, ``image_size``). Extend with :func:`register_backbone`.
#: "mmada": MMaDA's ``MMadaConfig.model_type`` (Gen-Verse/MMaDA: models/modeling_mmada.py).
#: "llada": Lumina-DiMOO's ``LLaDAConfig.model_type`` (Alpha-VLLM/Lumina-DiMOO: model/configuration_llada.py);
#: a plain LLaDA text model has it too; an MMaDA checkpoint saved with "llada" needs ``backbone=MMaDABackbone(...)``.
BACKBONES: dict[str, Callable[..., Backbone]] = {"mmada": MMaDABackbone.from_model, "llada": LuminaDiMOOBackbone.from_model}


def register_backbone(model_type: str, factory: Callable[..., Backbone]) -> None:
    """Use ``factory(model, tokenizer, **options)`` for models whose ``config.model_type`` is ``model_type``."""
    BACKBONES[model_type] = factory


def backbone_for(model, tokenizer, **options: Any) -> Backbone:
    """The adapter of ``model``'s family, from ``model.config.model_type`` (plug-ins are loaded if unknown)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in BACKBONES:
        load_plugins()
    if model_type not in BACKBONES:
        raise ValueError(
            f"no backbone adapter for a model with config.model_type={model_type!r}; supported model types: "
            f"{sorted(BACKBONES)}. Pass backbone=... to HTGRPOTrainer or call trl_htgrpo.backbones.register_backbone"
        )
    return BACKBONES[model_type](model, tokenizer, **options)


__all__ = ["Backbone", "MMaDABackbone", "LuminaDiMOOBackbone", "BACKBONES", "register_backbone", "backbone_for"]
