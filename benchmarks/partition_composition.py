"""What each partition calls structure in the shapes world: background share and object tiles held.

Draws base-model rollouts of training prompts (the sampler of the recipe: guidance 2, T = 12) and, for
each structure fraction, compares the first tokens in reveal order (``partition="step"``) with the
tokens of highest entropy at reveal (``partition="decision"``). Prints one line per fraction.

    python benchmarks/partition_composition.py [--images 48]
"""

from __future__ import annotations

import argparse

import torch

from trl_htgrpo.backbones import backbone_for
from trl_htgrpo.diffusion.sampler import sample_images
from trl_htgrpo.hierarchy import DecisionPartition, StepPartition
from trl_htgrpo.toy import BACKGROUND_CODE, load_prompts
from trl_htgrpo.toy.bundled import load_base_model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=48)
    a = p.parse_args(argv)
    model, tokenizer = load_base_model()
    backbone = backbone_for(model, tokenizer)
    prompts = [r["prompt"] for r in list(load_prompts("train"))[: a.images]]
    traj = sample_images(model, backbone, backbone.encode_prompts(prompts), steps=12, guidance_scale=2.0,
                         seeds=list(range(len(prompts))))
    bg = traj.codes == BACKGROUND_CODE  # (B, N)
    print(f"{len(prompts)} images, background {bg.float().mean():.3f} of tiles")
    for frac in (0.1, 0.2, 0.3):
        knobs = argparse.Namespace(structure_fraction=frac)
        for name, rule in (("step", StepPartition(knobs)), ("decision", DecisionPartition(knobs))):
            s = rule(traj)  # (B, N) structure
            print(f"fraction {frac}: {name:8s} background share {(bg & s).sum() / s.sum():.3f}, "
                  f"object tiles held {(~bg & s).sum() / (~bg).sum():.3f}")


if __name__ == "__main__":
    main()
