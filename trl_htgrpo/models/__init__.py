"""Native model code: the shapes masked-diffusion model (registered with the Auto classes) and the VQ decoders."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .configuration_shapes import ShapesDiffusionConfig
from .magvitv2 import MAGVITv2
from .modeling_shapes import ShapesDiffusionModel
from .vq import (
    VQ_FAMILIES,
    VQDecoder,
    VQFamily,
    VQSource,
    find_vq_decoder,
    load_vq_decoder,
    lumina_dimoo_to_uint8,
    mmada_to_uint8,
    register_vq_family,
    uint8_to_pil,
    wrap_vq_decoder,
)

AutoConfig.register(ShapesDiffusionConfig.model_type, ShapesDiffusionConfig, exist_ok=True)
AutoModel.register(ShapesDiffusionConfig, ShapesDiffusionModel, exist_ok=True)
AutoModelForMaskedLM.register(ShapesDiffusionConfig, ShapesDiffusionModel, exist_ok=True)

__all__ = [
    "MAGVITv2",
    "ShapesDiffusionConfig",
    "ShapesDiffusionModel",
    "VQDecoder",
    "VQFamily",
    "VQSource",
    "VQ_FAMILIES",
    "find_vq_decoder",
    "load_vq_decoder",
    "lumina_dimoo_to_uint8",
    "mmada_to_uint8",
    "register_vq_family",
    "uint8_to_pil",
    "wrap_vq_decoder",
]
