"""The HT-GRPO section of the model card: the method, the backbone and every setting that shaped the run."""

from __future__ import annotations

from .diffusion.estimators import ESTIMATORS
from .hierarchy import CREDITS, PARTITIONS


def htgrpo_card_section(trainer) -> str:
    a = trainer.args
    fields = ["estimator", *ESTIMATORS[a.estimator].knobs, "num_iterations", "stage_iterations",
              "partition", *PARTITIONS[a.partition].knobs, "credit", *CREDITS[a.credit].knobs,
              "num_generations", "beta", "loss_type", "epsilon", "learning_rate"]
    rows = [f"| `{f}` | `{getattr(a, f)}` |" for f in dict.fromkeys(fields)]
    rows += [f"| sampler `{k}` | `{v}` |" for k, v in trainer.sampling.items()]
    return (
        "\n## HT-GRPO\n\nTrained with HT-GRPO (\"Sketch Then Paint\", [arXiv 2605.16842]"
        "(https://arxiv.org/abs/2605.16842)) using [trl-htgrpo](https://github.com/trl-htgrpo): GRPO for "
        f"masked-diffusion text-to-image models. Backbone adapter: `{trainer.backbone.name}`.\n\n"
        "| setting | value |\n|---|---|\n" + "\n".join(rows) + "\n"
    )
