"""Native model code: the shapes masked-diffusion model, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .configuration_shapes import ShapesDiffusionConfig
from .modeling_shapes import ShapesDiffusionModel

AutoConfig.register(ShapesDiffusionConfig.model_type, ShapesDiffusionConfig, exist_ok=True)
AutoModel.register(ShapesDiffusionConfig, ShapesDiffusionModel, exist_ok=True)
AutoModelForMaskedLM.register(ShapesDiffusionConfig, ShapesDiffusionModel, exist_ok=True)

__all__ = ["ShapesDiffusionConfig", "ShapesDiffusionModel"]
