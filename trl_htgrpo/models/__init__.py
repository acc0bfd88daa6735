"""Native model code of the supported families: the VQ decoders (MAGVIT-v2, diffusers' VQModel) and the LLaDA
transformer, registered with the transformers Auto classes."""

from .magvitv2 import MAGVITv2
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

__all__ = [
    "MAGVITv2", "VQDecoder", "VQFamily", "VQSource", "VQ_FAMILIES", "find_vq_decoder", "load_vq_decoder",
    "lumina_dimoo_to_uint8", "mmada_to_uint8", "register_vq_family", "uint8_to_pil", "wrap_vq_decoder",
]
