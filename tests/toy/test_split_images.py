"""sample_split draws what the evaluation draws: the same image seeds and the recipe's sampler."""

import numpy as np

from trl_htgrpo import HTGRPOConfig
from trl_htgrpo.backbones import backbone_for
from trl_htgrpo.evaluation import evaluate_model
from trl_htgrpo.toy import load_prompts
from trl_htgrpo.toy.bundled import load_base_model
from trl_htgrpo.toy.recipes import SHAPES_RL
from trl_htgrpo.toy.split_images import sample_split
from trl_htgrpo.training.setup import sampling_settings


def test_sample_split_draws_the_evaluations_images_with_the_recipes_sampler():
    """2 images of each of the validation split's first 3 prompts: record i's image k is evaluate_model's image
    i * 2 + k (seed image_seed(0, i * 2 + k)), pixel for pixel; metas repeat each record twice."""
    drawn = sample_split(None, "validation", images_per_prompt=2, seed=0, max_prompts=3)
    records = list(load_prompts("validation"))[:3]
    assert drawn.records == records and drawn.metas == [r for r in records for _ in range(2)]
    model, tokenizer = load_base_model()
    backbone = backbone_for(model, tokenizer)
    settings = sampling_settings(HTGRPOConfig(output_dir="unused", **SHAPES_RL), backbone)
    ref = evaluate_model(model, backbone, records, images_per_prompt=2, seed=0, keep_images=6, **settings)
    assert len(drawn.images) == 6
    for im, (_, expected, _) in zip(drawn.images, ref["samples"]):
        assert np.array_equal(np.asarray(im), np.asarray(expected))
    assert drawn.reward.threshold == 0.6  # bound to the shapes backbone's detector
