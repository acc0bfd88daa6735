"""Backbone adapters: one per model family, chosen from the model's config."""

from __future__ import annotations

from .base import Backbone
from .lumina_dimoo import LuminaDiMOOBackbone
from .mmada import MMaDABackbone
from .shapes import ShapesBackbone

#: model_type -> adapter factory(tokenizer). Extend with ``register_backbone``.
#: "mmada": MMaDA's ``MMadaConfig.model_type`` (Gen-Verse/MMaDA: models/modeling_mmada.py).
#: "llada": Lumina-DiMOO's ``LLaDAConfig.model_type`` (Alpha-VLLM/Lumina-DiMOO: model/configuration_llada.py);
#: a plain LLaDA text model has it too; an MMaDA checkpoint saved with "llada" needs ``backbone=MMaDABackbone(...)``.
#: Both factories leave ``vq_decoder`` unset: pass a configured adapter as ``backbone=`` to decode images.
BACKBONES = {"shapes_mdm": ShapesBackbone, "mmada": MMaDABackbone, "llada": LuminaDiMOOBackbone}


def register_backbone(model_type: str, factory) -> None:
    BACKBONES[model_type] = factory


def backbone_for(model, tokenizer) -> Backbone:
    """The adapter of ``model``'s family, from ``model.config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in BACKBONES:
        raise ValueError(
            f"no backbone adapter for a model with config.model_type={model_type!r}; supported model types: "
            f"{sorted(BACKBONES)}. Pass backbone=... to HTGRPOTrainer or call trl_htgrpo.backbones.register_backbone"
        )
    return BACKBONES[model_type](tokenizer)


__all__ = [
    "Backbone", "ShapesBackbone", "MMaDABackbone", "LuminaDiMOOBackbone",
    "BACKBONES", "register_backbone", "backbone_for",
]
