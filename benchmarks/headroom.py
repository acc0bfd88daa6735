"""How far sharpening the base model can go: its pass@k per tag on a prompt split.

GRPO raises the probability of images the policy already draws; a prompt none of whose k base-model
images is correct gives a group of zero-variance strict rewards and, until the policy drifts there,
nothing to learn from. So pass@k (a prompt counts when any of its k images is strictly correct) is a
ceiling on what RL that concentrates the base distribution reaches within k draws, and mean accuracy is
where it starts. Images are drawn with the recipe's sampler (guidance 2, T = 12) and the evaluation's
image seeds; accuracy is the base model's evaluation score in expectation (a training run's evaluation
draws 2 images per prompt with other seeds).

    python benchmarks/headroom.py [--split validation] [--images_per_prompt 16] [--output heads.json]
"""

from __future__ import annotations

import argparse
import json

from trl_htgrpo.machine import describe_machine
from trl_htgrpo.rewards.geneval_rules import summarize
from trl_htgrpo.toy.split_images import sample_split


def headroom(tags: list[str], correct: list[list[bool]], ks: list[int]) -> dict[str, dict[str, float]]:
    """tag (and ``overall``) -> {"accuracy", "pass@k" for k in ``ks``} from ``correct[i]``, the verdicts of prompt
    ``i``'s images; pass@k counts prompt ``i`` when any of ``correct[i][:k]`` holds. Every figure is GenEval's
    summary (:func:`~trl_htgrpo.rewards.geneval_rules.summarize`: per tag, overall = mean of the tags)."""
    n = len(correct[0])
    figs = {"accuracy": summarize([t for t in tags for _ in range(n)], [c for row in correct for c in row])}
    figs |= {f"pass@{k}": summarize(tags, [any(row[:k]) for row in correct]) for k in ks}
    table = {tag: {key: f["tags"][tag] for key, f in figs.items()} for tag in figs["accuracy"]["tags"]}
    return table | {"overall": {key: f["overall"] for key, f in figs.items()}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="validation")
    p.add_argument("--images_per_prompt", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the figures as JSON here")
    a = p.parse_args(argv)
    k = a.images_per_prompt
    drawn = sample_split(None, a.split, k, a.seed, desc="base model")
    records, verdicts = drawn.records, drawn.reward.verdicts(drawn.images, drawn.metas)
    correct = [[bool(v.correct) for v in verdicts[i * k:(i + 1) * k]] for i in range(len(records))]  # (prompts, k)
    ks = [j for j in (1, 2, 4, 8, 16, 32, 64) if j <= k]
    out = {"split": a.split, "images_per_prompt": k, "seed": a.seed,
           "tags": headroom([r["tag"] for r in records], correct, ks), "machine": describe_machine()}
    print(f"{'tag':14s} {'accuracy':>8s} " + " ".join(f"pass@{j:<3d}" for j in ks))
    for tag, fig in out["tags"].items():
        print(f"{tag:14s} {fig['accuracy']:8.3f} " + " ".join(f"{fig[f'pass@{j}']:8.3f}" for j in ks))
    if a.output:
        with open(a.output, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
