"""trl-htgrpo: HT-GRPO ("Sketch Then Paint") for diffusion multimodal LLMs, as a drop-in extension of TRL."""

__version__ = "0.1.0"

from . import models  # noqa: F401  (registers the Auto classes)
from .backbones import Backbone, ShapesBackbone, backbone_for, register_backbone
from .config import HTGRPOConfig
from .rewards import GenEvalReward, ShapesDetector
from .trainer import HTGRPOTrainer

__all__ = [
    "HTGRPOConfig", "HTGRPOTrainer", "Backbone", "ShapesBackbone", "backbone_for", "register_backbone",
    "GenEvalReward", "ShapesDetector",
]
