"""The built-in shapes world: a miniature of text-to-image with VQ tokens and GenEval.

An image is a ``GRID x GRID`` grid of tile codes; each code renders to a ``TILE_PX`` square of
pixels. Objects are coloured shape templates; prompts follow GenEval's metadata format.
"""

from .palette import BACKGROUND_CODE, CODEBOOK_SIZE, COLORS, GRID, TILE_PX, IMAGE_PX, NUM_IMAGE_TOKENS
from .shapes import CLASSES, TEMPLATES
from .codec import decode_codes, encode_image
from .scenes import SceneObject, Scene, render_scene, sample_scene
from .prompts import TAGS, RELATIONS, load_prompts, prompts_path

__all__ = [
    "BACKGROUND_CODE", "CODEBOOK_SIZE", "COLORS", "GRID", "TILE_PX", "IMAGE_PX", "NUM_IMAGE_TOKENS",
    "CLASSES", "TEMPLATES", "decode_codes", "encode_image", "SceneObject", "Scene", "render_scene",
    "sample_scene", "TAGS", "RELATIONS", "load_prompts", "prompts_path",
]
