"""A prompt split's images as the shapes benchmarks draw them: a model (the bundled base model or a saved run),
the recipe's sampler (:data:`~trl_htgrpo.toy.recipes.SHAPES_RL`: guidance 2, T = 12) and the evaluation's image
seeds (image ``k`` of prompt ``i`` with ``image_seed(seed, i * images_per_prompt + k)``)."""

from __future__ import annotations

from typing import Any, NamedTuple

from PIL import Image

from .. import HTGRPOConfig
from ..backbones import backbone_for
from ..evaluation import image_seed, sample_images
from ..rewards import GenEvalReward
from ..training.setup import sampling_settings
from .bundled import load_base_model
from .prompts import load_prompts
from .recipes import SHAPES_RL


class SplitImages(NamedTuple):
    records: list[dict[str, Any]]  # the split's prompts
    metas: list[dict[str, Any]]  # one per image: each record images_per_prompt times
    images: list[Image.Image]  # (len(metas),)
    reward: GenEvalReward  # strict GenEval, bound to the model's backbone (its detector and thresholds)


def sample_split(model: str | None = None, split: str = "validation", images_per_prompt: int = 4, seed: int = 0,
                 max_prompts: int | None = None, desc: str | None = None) -> SplitImages:
    """``images_per_prompt`` images of each of the split's prompts (its first ``max_prompts``; None: all) from
    ``model`` (a folder saved by save_pretrained; None: the bundled base model). ``desc``: a progress bar."""
    net, tokenizer = load_base_model(model)
    backbone = backbone_for(net, tokenizer)
    reward = GenEvalReward(strict=True)
    reward.bind_backbone(backbone)
    records = list(load_prompts(split))[:max_prompts]
    metas = [r for r in records for _ in range(images_per_prompt)]
    seeds = [image_seed(seed, i) for i in range(len(metas))]
    settings = sampling_settings(HTGRPOConfig(output_dir="unused", **SHAPES_RL), backbone)  # the recipe's sampler
    images = sample_images(net, backbone, [m["prompt"] for m in metas], 64, seeds, desc, **settings)
    return SplitImages(records, metas, images, reward)
