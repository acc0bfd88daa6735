"""Why images fail GenEval: the kind of each image's first failing clause, per tag, for a model on a prompt split.

The table is :func:`trl_htgrpo.evaluation.failures.failure_table`: per tag the fraction of images correct or failing
first on ``missing`` (split into ``absent``, ``malformed``, ``too_few``), ``color``, ``position`` or ``extra``; the
fraction correct among the images that have every object (``given_objects``: for color_attr the colour binding's
accuracy, for position the relation's) and, beside it, ``given_objects_swapped``, the same images judged against
the opposite relation or the colours exchanged (equal rates: the model ignores the relation or binding); and what
the detector saw: detections per image and the fraction the rules drop (for the shapes detector a component whose
best template IoU is at most 0.6, 0.9 for counting: a shape drawn wrong, or a stray tile). Run it on the base model
and on a trained checkpoint to see which failures training removes and which it leaves; images are drawn with the
recipe's sampler (guidance 2, T = 12) and the evaluation's image seeds (2 per prompt on the held-out split: the main
job's own evaluation images). ``compare_estimators.py --failures`` records the same table at every point of its
curves.

    python benchmarks/failure_modes.py [--model outputs/htgrpo-shapes] [--split validation] [--images_per_prompt 4]
        [--max_prompts N] [--output failures.json]
"""

from __future__ import annotations

import argparse
import json

from trl_htgrpo.evaluation.failures import failure_table, format_failure_table, swapped_verdicts
from trl_htgrpo.machine import describe_machine
from trl_htgrpo.toy.split_images import sample_split


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a folder saved by save_pretrained (a training run's output_dir); "
                   "default: the bundled base model")
    p.add_argument("--split", default="validation")
    p.add_argument("--images_per_prompt", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_prompts", type=int, default=None, help="only the split's first N prompts (a quick look)")
    p.add_argument("--output", default=None, help="write the table as JSON here")
    a = p.parse_args(argv)
    drawn = sample_split(a.model, a.split, a.images_per_prompt, a.seed, a.max_prompts, desc=a.model or "base model")
    metas, images, reward = drawn.metas, drawn.images, drawn.reward
    detections = reward.detect(images)  # every detection, kept or not: the verdicts and the table read them
    verdicts = reward.verdicts(images, metas, detections)
    swapped = swapped_verdicts(reward, images, metas, detections)  # the opposite relation, the colours exchanged
    table = failure_table(metas, verdicts, detections, reward.threshold, reward.counting_threshold, swapped)
    print(format_failure_table(table))
    if a.output:
        with open(a.output, "w") as f:
            json.dump({"model": a.model or "shapes-mdm", "split": a.split, "images_per_prompt": a.images_per_prompt,
                       "seed": a.seed, "threshold": reward.threshold, "counting_threshold": reward.counting_threshold,
                       "tags": table, "machine": describe_machine()},
                      f, indent=1)
    return table


if __name__ == "__main__":
    main()
