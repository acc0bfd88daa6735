"""The shapes world as a plug-in: it registers its model classes, backbone, model name and detector through
the same public registries a third party uses (see :mod:`trl_htgrpo.plugins`). Imported by
``trl_htgrpo.toy`` and named in the ``trl_htgrpo.plugins`` entry-point group of this distribution."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from ..backbones import register_backbone
from ..plugins import register_model_name
from ..rewards.detectors import register_detector
from .backbone import ShapesBackbone
from .bundled import BUNDLED_NAME, bundled_path
from .configuration import ShapesDiffusionConfig
from .detector import ShapesDetector
from .modeling import ShapesDiffusionModel

AutoConfig.register(ShapesDiffusionConfig.model_type, ShapesDiffusionConfig, exist_ok=True)
AutoModel.register(ShapesDiffusionConfig, ShapesDiffusionModel, exist_ok=True)
AutoModelForMaskedLM.register(ShapesDiffusionConfig, ShapesDiffusionModel, exist_ok=True)
register_backbone(ShapesDiffusionConfig.model_type, ShapesBackbone.from_model)
register_model_name(BUNDLED_NAME, bundled_path)
register_detector("shapes", ShapesDetector)
