"""Plot what ``compare_estimators.py --diagnose`` recorded: per run, the evaluation curve with its tags, the fully
masked context's entropy and KL to the base model, and per rollout batch the reward, the zero-variance groups, the
clip fractions, the gradient norm before clipping, the structure fraction and the background share of structure tokens.

    python benchmarks/plot_diagnosis.py outputs/diag/estimators.json [--output diagnosis.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def smooth(xs, k=3):
    out = []
    for i in range(len(xs)):
        window = xs[max(0, i - k + 1) : i + 1]
        out.append(sum(window) / len(window))
    return out


TITLES = ["evaluation overall", "entropy, fully masked context", "KL(policy || base), fully masked",
          "hard tags (evaluation)", "train reward (per log step, smoothed)", "zero-variance groups",
          "clip fraction (region)", "gradient norm before clipping (per log step, log scale)",
          "structure fraction (per rollout batch)", "background share"]


def draw(runs):
    """One figure of ``len(TITLES)`` panels over the runs (each a run of estimators.json with its ``log``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(24, 8.5))
    ax = axes.flatten()
    for r in runs:
        name = r["estimator"] + (f":{r['ablation']}" if r["ablation"] else "") + f" s{r['seed']}" + r.get("label", "")
        xs = [c["rollouts"] for c in r["curve"]]
        ax[0].plot(xs, [c["overall"] for c in r["curve"]], marker="o", label=name)
        ax[1].plot(xs, [c.get("masked_entropy", float("nan")) for c in r["curve"]], marker="o", label=name)
        ax[2].plot(xs, [c.get("kl_to_base", float("nan")) for c in r["curve"]], marker="o", label=name)
        for tag, style in (("color_attr", "-"), ("position", "--"), ("counting", ":")):
            ax[3].plot(xs, [c["tags"].get(tag, float("nan")) for c in r["curve"]], style, label=f"{name} {tag}")
        log = r["log"]
        steps = list(range(1, len(log) + 1))
        ax[4].plot(steps, smooth([h.get("reward", float("nan")) for h in log]), label=name)
        ax[5].plot(steps, smooth([h.get("frac_reward_zero_std", float("nan")) for h in log]), label=name)
        ax[6].plot(steps, smooth([h.get("clip_ratio/region_mean", float("nan")) for h in log]), label=name)
        # at the recipe it grows about 70-fold over 144 rollout batches (docs/benchmarks.md) while max_grad_norm=0.2 caps the step
        ax[7].plot(steps, [h.get("grad_norm", float("nan")) for h in log], label=name)
        comp = r.get("composition", [])
        ax[8].plot(range(1, len(comp) + 1), [c["structure_fraction"] for c in comp], label=name)
        ax[9].plot(range(1, len(comp) + 1), [c["background_in_structure"] for c in comp], label=f"{name} structure")
        ax[9].plot(range(1, len(comp) + 1), [c["background_in_refinement"] for c in comp], ":", label=f"{name} refinement")
    ax[7].set_yscale("log")
    for axis, title in zip(ax, TITLES):
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    ax[3].legend(fontsize=6)
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="estimators.json files written with --diagnose")
    p.add_argument("--output", default=None, help="PNG path (default: diagnosis.png beside the first file)")
    a = p.parse_args(argv)
    # several files: each run's name ends with its file's folder (e.g. the --output_dir of a --set variant)
    runs = [{**r, "label": r.get("label") or (f" [{Path(path).parent.name}]" if len(a.results) > 1 else "")}
            for path in a.results for r in json.loads(Path(path).read_text())["runs"] if "log" in r]
    fig = draw(runs)
    out = Path(a.output) if a.output else Path(a.results[0]).with_name("diagnosis.png")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
