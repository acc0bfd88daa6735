"""trl-htgrpo: HT-GRPO ("Sketch Then Paint") for diffusion multimodal LLMs, as a drop-in extension of TRL."""

__version__ = "0.1.0"

from . import models  # noqa: F401  (registers the Auto classes)
from .backbones import Backbone, backbone_for, register_backbone
from .config import HTGRPOConfig
from .plugins import load_plugins, register_model_name
from .rewards import GenEvalReward, register_detector
from .trainer import HTGRPOTrainer

__all__ = [
    "HTGRPOConfig", "HTGRPOTrainer", "Backbone", "backbone_for", "register_backbone", "register_model_name",
    "register_detector", "load_plugins", "GenEvalReward",
]
