"""Can an estimator raise its own training reward? Train on a few fixed prompts and log the reward per rollout batch.

    python benchmarks/fixed_prompts.py                                   # ht and trace, 8 colour-binding prompts
    python benchmarks/fixed_prompts.py --runs ht,d1 --tag two_object --rollouts 24
    python benchmarks/fixed_prompts.py --quick                           # smoke: one rollout batch
    python benchmarks/fixed_prompts.py --set '{"max_grad_norm": 1.0, "adam_beta2": 0.999, "weight_decay": 0.0}'

A diagnosis, not a score: on 600 varied prompts the training reward of every estimator barely moves in 48
rollout batches (docs/benchmarks.md), so this asks the narrower question whether the surrogate raises the reward
of prompts it sees again and again, and whether scoring the sampler's own contexts (TraceRL) does it faster.
Writes ``fixed_prompts.json`` (per run: estimator, the prompts, TRL's ``reward`` per rollout batch, its quarter
means, training seconds) and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from datasets import Dataset

from trl_htgrpo import HTGRPOConfig, HTGRPOTrainer
from trl_htgrpo.rewards import get_reward
from trl_htgrpo.toy import load_prompts
from trl_htgrpo.toy.recipes import SHAPES_RL


def quarters(xs: list[float]) -> list[float]:
    """Means of the four consecutive quarters of ``xs`` (the last one takes the remainder)."""
    q = max(len(xs) // 4, 1)
    parts = [xs[i * q:(i + 1) * q] for i in range(3)] + [xs[3 * q:]]
    return [round(statistics.mean(p), 3) for p in parts if p]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="ht,trace", help="comma-separated estimators")
    p.add_argument("--tag", default="color_attr", help="the training prompts' tag")
    p.add_argument("--num_prompts", type=int, default=8, help="the first N training prompts with --tag")
    p.add_argument("--rollouts", type=int, default=16)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", default="{}", help="JSON of HTGRPOConfig fields over the recipe")
    p.add_argument("--quick", action="store_true", help="smoke: one rollout batch of 4 x 4 images, 4 steps")
    p.add_argument("--output_dir", default="outputs/fixed_prompts")
    a = p.parse_args(argv)
    records = [r for r in load_prompts("train") if r["tag"] == a.tag][: a.num_prompts]
    if not records:
        raise SystemExit(f"--tag {a.tag!r} has no training prompts; use one of single_object, two_object, counting, "
                         "colors, position, color_attr")
    kw = {**SHAPES_RL, "learning_rate": a.learning_rate, **json.loads(a.overrides)}
    if a.quick:
        a.rollouts = 1
        kw.update(per_device_train_batch_size=16, gradient_accumulation_steps=1, num_generations=4, diffusion_steps=4)
    out, results = Path(a.output_dir), []
    out.mkdir(parents=True, exist_ok=True)
    for estimator in a.runs.split(","):
        with tempfile.TemporaryDirectory() as d:
            args = HTGRPOConfig(output_dir=d, max_steps=a.rollouts * kw["num_iterations"], seed=a.seed,
                                save_strategy="no", logging_steps=kw["num_iterations"], log_images_steps=0,
                                estimator=estimator, **kw)
            trainer = HTGRPOTrainer("shapes-mdm", reward_funcs=[get_reward("geneval")], args=args,
                                    train_dataset=Dataset.from_list(records))
            t0 = time.time()
            trainer.train()
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        results.append({"estimator": estimator, "tag": a.tag, "prompts": [r["prompt"] for r in records],
                        "learning_rate": a.learning_rate, "reward": rewards, "quarters": quarters(rewards),
                        "train_seconds": time.time() - t0})
        r = results[-1]
        print(f"{estimator}: reward per rollout batch {' '.join(f'{x:.2f}' for x in rewards)}; quarters "
              f"{' / '.join(f'{x:.3f}' for x in r['quarters'])} ({r['train_seconds']:.0f} s)", flush=True)
        (out / "fixed_prompts.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {out / 'fixed_prompts.json'}")


if __name__ == "__main__":
    main()
