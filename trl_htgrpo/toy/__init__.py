"""The built-in shapes world: a miniature of text-to-image with VQ tokens and GenEval, as a plug-in.

An image is a ``GRID x GRID`` grid of tile codes; each code renders to a ``TILE_PX`` square of
pixels. Objects are coloured shape templates; prompts follow GenEval's metadata format. Importing
this package registers the shapes model (``"shapes-mdm"``, model type ``shapes_mdm``), its backbone
and its detector (``"shapes"``) through the public registries (:mod:`.plugin`).
"""

from .palette import BACKGROUND_CODE, CODEBOOK_SIZE, COLORS, GRID, TILE_PX, IMAGE_PX, NUM_IMAGE_TOKENS
from .shapes import CLASSES, TEMPLATES
from .codec import decode_codes, encode_image
from .scenes import SceneObject, Scene, render_scene, sample_scene
from .prompts import TAGS, RELATIONS, load_prompts, prompts_path
from . import plugin  # noqa: F401  (registers the shapes world)
from .backbone import ShapesBackbone
from .configuration import ShapesDiffusionConfig
from .detector import ShapesDetector
from .modeling import ShapesDiffusionModel

__all__ = [
    "BACKGROUND_CODE", "CODEBOOK_SIZE", "COLORS", "GRID", "TILE_PX", "IMAGE_PX", "NUM_IMAGE_TOKENS",
    "CLASSES", "TEMPLATES", "decode_codes", "encode_image", "SceneObject", "Scene", "render_scene",
    "sample_scene", "TAGS", "RELATIONS", "load_prompts", "prompts_path", "ShapesBackbone",
    "ShapesDiffusionConfig", "ShapesDetector", "ShapesDiffusionModel",
]
