"""Native model code, registered with the Auto classes: the shapes masked-diffusion model and the LLaDA
architecture of MMaDA (model_type "mmada") and Lumina-DiMOO (model_type "llada")."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .configuration_llada import LLaDAConfig, MMaDAConfig
from .configuration_shapes import ShapesDiffusionConfig
from .modeling_llada import LLaDAModelLM, MMaDAModelLM
from .modeling_shapes import ShapesDiffusionModel

# peft `target_modules` (a string is matched with re.fullmatch against each module's name): the seven
# projections of every LLaDA block. `ff_out` also names the LM head `model.transformer.ff_out`; the
# `blocks.N.` part keeps the head out.
LLADA_LORA_TARGET_MODULES = r".*\.blocks\.\d+\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)"

for _config, _model in (
    (ShapesDiffusionConfig, ShapesDiffusionModel),
    (LLaDAConfig, LLaDAModelLM),
    (MMaDAConfig, MMaDAModelLM),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForMaskedLM.register(_config, _model, exist_ok=True)

__all__ = [
    "LLADA_LORA_TARGET_MODULES",
    "LLaDAConfig",
    "LLaDAModelLM",
    "MMaDAConfig",
    "MMaDAModelLM",
    "ShapesDiffusionConfig",
    "ShapesDiffusionModel",
]
