"""Native model code of the supported families, registered with the transformers Auto classes: the LLaDA
architecture of MMaDA (model_type "mmada") and Lumina-DiMOO (model_type "llada"), and the VQ decoders
(MAGVIT-v2, diffusers' VQModel)."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .configuration_llada import LLaDAConfig, MMaDAConfig
from .magvitv2 import MAGVITv2
from .modeling_llada import LLaDAModelLM, MMaDAModelLM
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

# peft `target_modules` (a string is matched with re.fullmatch against each module's name): the seven
# projections of every LLaDA block. `ff_out` also names the LM head `model.transformer.ff_out`; the
# `blocks.N.` part keeps the head out.
LLADA_LORA_TARGET_MODULES = r".*\.blocks\.\d+\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)"

for _config, _model in ((LLaDAConfig, LLaDAModelLM), (MMaDAConfig, MMaDAModelLM)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForMaskedLM.register(_config, _model, exist_ok=True)

__all__ = [
    "LLADA_LORA_TARGET_MODULES", "LLaDAConfig", "LLaDAModelLM", "MMaDAConfig", "MMaDAModelLM",
    "MAGVITv2", "VQDecoder", "VQFamily", "VQSource", "VQ_FAMILIES", "find_vq_decoder", "load_vq_decoder",
    "lumina_dimoo_to_uint8", "mmada_to_uint8", "register_vq_family", "uint8_to_pil", "wrap_vq_decoder",
]
