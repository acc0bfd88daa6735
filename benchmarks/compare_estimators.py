"""Compare HT-GRPO with the baselines and its ablations on the shapes world, at equal sample budget.

    python benchmarks/compare_estimators.py --quick                  # smoke: a few minutes
    python benchmarks/compare_estimators.py --runs ht,d1,maskgrpo --seeds 5   # the comparison at the recipe
    python benchmarks/compare_estimators.py --eval_split validation  # choosing defaults (never on heldout)
    python benchmarks/compare_estimators.py --merge a/estimators.json b/estimators.json --output_dir both

From the same base model, training prompts and number of rollout batches, every run trains one
estimator (or an HT-GRPO ablation) and is evaluated on ``--eval_split`` during and after training.
Writes ``estimators.json`` (per run: estimator, ablation, seed, overall and per-tag score, wall
seconds, model passes per rollout batch and per optimizer update split by phase, tokens, the
learning curve), ``estimators.png`` (overall against rollouts and against wall time) and prints a
ranked table (mean and spread over seeds). A second section counts passes at num_iterations = 6
with beta > 0. Every run's config is checked before the first one trains.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from transformers import TrainerCallback

from trl_htgrpo import GenEvalReward, HTGRPOConfig, HTGRPOTrainer
from trl_htgrpo.rewards import get_reward
from trl_htgrpo.evaluation import evaluate_trainer
from trl_htgrpo.machine import describe_machine
from trl_htgrpo.toy import BACKGROUND_CODE, load_prompts
from trl_htgrpo.toy.recipes import MAIN_JOB_ROLLOUTS, SHAPES_RL

#: (estimator, ablation, config overrides)
RUNS = [
    ("ht", "", {}),
    ("unigrpo", "", {"estimator": "unigrpo"}),
    ("d1", "", {"estimator": "d1"}),
    ("maskgrpo", "", {"estimator": "maskgrpo"}),
    ("trace", "", {"estimator": "trace"}),
    ("ht", "no_stages", {"stage_iterations": [SHAPES_RL["num_iterations"], 0, 0]}),
    ("ht", "uniform_credit", {"credit": "uniform"}),
    ("ht", "partition_step", {"partition": "step"}),
    ("ht", "refine_sketch", {"refine_context": "sketch"}),
]
PHASES = ("rollout", "old", "ref", "policy")


#: evaluation of the base model per (eval seed, split size, images per prompt): the same for every run
_BASE: dict[tuple, dict] = {}


@torch.no_grad()
def probe(trainer, records, base_state) -> dict[str, float]:
    """What the policy predicts from the fully masked state for the evaluation prompts (one forward per prompt, the
    estimator's context): the mean entropy of the conditional distribution over codes at each image position, and
    its KL to the base model's, KL(policy || base), averaged over positions and prompts."""
    from trl_htgrpo.diffusion.sampler import left_pad

    model, bb = trainer.model, trainer.backbone
    was = model.training
    model.eval()
    p_ids, p_mask = left_pad(bb.encode_prompts([r["prompt"] for r in records]), bb.pad_token_id, trainer.accelerator.device)
    image = torch.full((len(records), bb.num_image_tokens), bb.mask_token_id, device=p_ids.device)
    logp = torch.log_softmax(bb.image_logits(model, *bb.build_inputs(p_ids, p_mask, image)).float(), -1)
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(base_state)
    base = torch.log_softmax(bb.image_logits(model, *bb.build_inputs(p_ids, p_mask, image)).float(), -1)
    model.load_state_dict(current)
    model.train(was)
    return {"masked_entropy": float(-(logp.exp() * logp).sum(-1).mean()),
            "kl_to_base": float((logp.exp() * (logp - base)).sum(-1).mean())}


class _Composition:
    """Per rollout batch: the structure fraction and the share of background tiles among structure tokens and among
    refinement tokens (is the early-revealed 'layout' the empty canvas?)."""

    def __init__(self, trainer, background_code: int):
        self.rows, original = [], trainer._generate_and_score_completions

        def wrapped(inputs):
            out = original(inputs)
            if trainer.model.training:
                from trl_htgrpo.rollout import RolloutBatch

                r = RolloutBatch.from_inputs(out)
                bg, s = r.trajectory.codes == background_code, r.structure
                self.rows.append({"structure_fraction": float(s.float().mean()),
                                  "background_in_structure": float((bg & s).sum() / s.sum().clamp(min=1)),
                                  "background_in_refinement": float((bg & ~s).sum() / (~s).sum().clamp(min=1)),
                                  "background_fraction": float(bg.float().mean())})
            return out

        trainer._generate_and_score_completions = wrapped


class _Curve(TrainerCallback):
    """Evaluate the base model (once per seed, shared by all runs) and then every ``every`` rollout
    batches; keeps (rollouts, train seconds, overall, tags), with ``failures`` the failure table of the same
    images (:func:`~trl_htgrpo.evaluation.failures.failure_table`), and with ``diagnose`` the probe of :func:`probe`."""

    def __init__(self, records, every, images_per_prompt, seed, diagnose=False, failures=False):
        self.records, self.every, self.ipp, self.seed = records, every, images_per_prompt, seed
        self.trainer, self.points, self.eval_seconds, self.t0 = None, [], 0.0, None
        self.base_seconds = 0.0  # base-model evaluation, before training starts
        self.diagnose, self.base_state, self.failures = diagnose, None, failures

    def _point(self, rollouts, train_seconds, res) -> dict:
        keep = ("overall", "tags", "failures") if self.failures else ("overall", "tags")
        return {"rollouts": rollouts, "train_seconds": train_seconds, **{k: res[k] for k in keep}}

    def on_train_begin(self, args, state, control, **kw):
        key = (self.seed, len(self.records), self.ipp, self.failures)
        if key not in _BASE:
            t = time.time()
            _BASE[key] = evaluate_trainer(self.trainer, self.records, self.ipp, seed=self.seed, failures=self.failures)
            self.base_seconds = time.time() - t
        self.points.append(self._point(0, 0.0, _BASE[key]))
        if self.diagnose:
            self.base_state = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
            self.points[-1].update(probe(self.trainer, self.records, self.base_state))
        self.t0 = time.time()

    def on_step_end(self, args, state, control, **kw):
        rollouts = state.global_step // args.num_iterations
        last = state.global_step == state.max_steps  # the final point, also when every does not divide the budget
        if state.global_step % args.num_iterations == 0 and (rollouts % self.every == 0 or last):
            t = time.time()
            res = evaluate_trainer(self.trainer, self.records, self.ipp, seed=self.seed, failures=self.failures)
            self.eval_seconds += time.time() - t
            self.points.append(self._point(rollouts, t - self.t0 - (self.eval_seconds - (time.time() - t)), res))
            if self.diagnose:
                self.points[-1].update(probe(self.trainer, self.records, self.base_state))
            print(f"[curve] seed {self.seed} rollouts {rollouts}: overall {res['overall']:.3f}", flush=True)


def pass_figures(trainer, rollouts: int, batch: int) -> dict[str, float]:
    """Model passes per rollout batch and per optimizer update, in full-batch units (sequences / batch
    size), split by phase (rollout, old, ref, policy), and the tokens they read per rollout batch."""
    c, updates = trainer.passes.counts, trainer.state.global_step
    out = {}
    for unit, n in (("rollout_batch", rollouts), ("update", updates)):
        for p in PHASES:
            out[f"{p}_forwards_per_{unit}"] = c[f"{p}_forwards"] / n / batch
        out[f"policy_backwards_per_{unit}"] = c["policy_backwards"] / n / batch
        out[f"old_ref_forwards_per_{unit}"] = out[f"old_forwards_per_{unit}"] + out[f"ref_forwards_per_{unit}"]
        out[f"total_forwards_per_{unit}"] = sum(out[f"{p}_forwards_per_{unit}"] for p in PHASES)
    for p in PHASES:
        out[f"{p}_tokens_per_rollout_batch"] = c[f"{p}_tokens"] / rollouts
    out["updates_per_rollout_batch"] = updates / rollouts
    return out


def run_config(overrides, seed, rollouts, out_dir, extra) -> HTGRPOConfig:
    """The run's HTGRPOConfig: the recipe, then ``--set``, then the run's own overrides."""
    kw = {**SHAPES_RL, **extra, **overrides}
    K = kw["num_iterations"]
    return HTGRPOConfig(output_dir=out_dir, max_steps=rollouts * K, seed=seed, save_strategy="no",
                        logging_steps=K, log_images_steps=0, **kw)


#: per rollout batch, from TRL's and our logs: what the diagnosis of over-optimisation reads
LOGGED = ("reward", "reward_std", "frac_reward_zero_std", "entropy", "kl", "clip_ratio/region_mean",
          "clip_ratio/low_mean", "clip_ratio/high_mean", "ht/approx_kl", "ht/max_abs_log_ratio", "grad_norm")


def run_one(model, estimator, ablation, overrides, seed, rollouts, records, every, ipp, out_dir, extra, diagnose=False,
            reward="geneval", reward_options=None, failures=False):
    args = run_config(overrides, seed, rollouts, out_dir, extra)
    curve = _Curve(records, every, ipp, seed, diagnose, failures)
    trainer = HTGRPOTrainer(model, reward_funcs=[get_reward(reward, **(reward_options or {}))], args=args,
                            train_dataset=load_prompts("train"), callbacks=[curve])
    curve.trainer = trainer
    composition = _Composition(trainer, BACKGROUND_CODE) if diagnose else None
    t0 = time.time()
    trainer.train()
    wall = time.time() - t0 - curve.eval_seconds - curve.base_seconds
    batch = args.per_device_train_batch_size * args.steps_per_generation
    final = curve.points[-1]
    out = {"estimator": estimator, "ablation": ablation, "seed": seed, "overall": final["overall"],
           "tags": final["tags"], "wall_seconds": wall, "rollouts": rollouts, "curve": curve.points,
           **pass_figures(trainer, rollouts, batch)}
    if diagnose:
        logs = [h for h in trainer.state.log_history if "reward" in h or "ht/stage" in h]
        out["log"] = [{k: h[k] for k in (*LOGGED, "step") if k in h} | {k: v for k, v in h.items() if k.startswith("rewards/")}
                      for h in logs]
        out["composition"] = composition.rows
    return out


def count_passes(model, num_iterations=6, beta=0.04):
    """Passes per rollout batch of every estimator at K = num_iterations, beta > 0 (one rollout batch)."""
    out = {}
    for estimator in ("ht", "unigrpo", "d1", "maskgrpo", "trace"):
        extra = {"stage_iterations": [2, 2, 2]} if estimator == "ht" and num_iterations == 6 else {}
        kw = {**SHAPES_RL, "num_iterations": num_iterations, **extra}
        with tempfile.TemporaryDirectory() as d:
            args = HTGRPOConfig(output_dir=d, max_steps=num_iterations, beta=beta, estimator=estimator,
                                save_strategy="no", log_images_steps=0, **kw)
            tr = HTGRPOTrainer(model, reward_funcs=[GenEvalReward()], args=args, train_dataset=load_prompts("train"))
            tr.train()
            out[estimator] = pass_figures(tr, 1, args.per_device_train_batch_size * args.steps_per_generation)
    return out


def print_counts(counts):
    print("forward passes per rollout batch (and per optimizer update) at num_iterations=6, beta>0 (full-batch units):")
    ht = counts["ht"]["old_ref_forwards_per_rollout_batch"]
    for est, c in counts.items():
        print(f"  {est:<9} old+ref {c['old_ref_forwards_per_rollout_batch']:5.2f} (ht / this {ht / c['old_ref_forwards_per_rollout_batch']:.2f})"
              f"   rollout {c['rollout_forwards_per_rollout_batch']:6.2f}   policy fwd {c['policy_forwards_per_rollout_batch']:5.2f}"
              f"   total fwd {c['total_forwards_per_rollout_batch']:6.2f}   bwd {c['policy_backwards_per_rollout_batch']:5.2f}"
              f"   | per update: old+ref {c['old_ref_forwards_per_update']:5.2f} policy fwd {c['policy_forwards_per_update']:5.2f}")


def mean_curve(runs):
    """The seeds' mean curve: at each rollout batch that every run evaluated (merged runs may have been made with
    other ``--eval_every``), the mean training seconds and overall score. Returns (rollouts, seconds, overall)."""
    at = [{p["rollouts"]: p for p in r["curve"]} for r in runs]
    xs = sorted(set.intersection(*(set(a) for a in at)))
    return (xs, [statistics.mean(a[x]["train_seconds"] for a in at) for x in xs],
            [statistics.mean(a[x]["overall"] for a in at) for x in xs])


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = sorted({(r["estimator"], r["ablation"]) for r in runs})
    for est, abl in labels:
        rs = [r for r in runs if (r["estimator"], r["ablation"]) == (est, abl)]
        xs, ts, ys = mean_curve(rs)
        name = est + (f":{abl}" if abl else "")
        style = "-" if not abl else "--"
        axes[0].plot(xs, ys, style, marker="o", label=name, linewidth=2.5 if name == "ht" else 1.2)
        axes[1].plot(ts, ys, style, marker="o", label=name, linewidth=2.5 if name == "ht" else 1.2)
    axes[0].set_xlabel("rollout batches")
    axes[1].set_xlabel("training wall seconds (2 CPU cores)")
    for ax in axes:
        ax.set_ylabel("overall (GenEval rules)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(runs) -> str:
    """Ranked by mean over seeds: the spread (population sd), the standard error of the mean (sample sd / sqrt(n)),
    the mean gain over the base model, on how many seeds the gain is positive, and against HT-GRPO, on how many
    seeds this run is behind it."""
    groups = {}
    for r in runs:
        groups.setdefault((r["estimator"], r["ablation"]), []).append(r)
    by_seed = {(r["estimator"], r["ablation"], r["seed"]): r["overall"] for r in runs}
    rows = []
    for (est, abl), rs in groups.items():
        s = [r["overall"] for r in rs]
        gains = [r["overall"] - r["curve"][0]["overall"] for r in rs]
        se = statistics.stdev(s) / len(s) ** 0.5 if len(s) > 1 else 0.0
        behind = [by_seed[("ht", "", r["seed"])] > r["overall"] for r in rs if ("ht", "", r["seed"]) in by_seed]
        rows.append((statistics.mean(s), statistics.pstdev(s) if len(s) > 1 else 0.0, se, est + (f":{abl}" if abl else ""),
                     len(s), statistics.mean(gains), sum(g > 0 for g in gains),
                     f"{sum(behind)}/{len(behind)}" if (est, abl) != ("ht", "") else "-",
                     statistics.mean(r["wall_seconds"] for r in rs), rs[0]["old_ref_forwards_per_rollout_batch"]))
    rows.sort(key=lambda x: -x[0])
    lines = [f"{'rank':<5}{'run':<22}{'mean':>7}{'spread':>8}{'se':>7}{'seeds':>6}{'gain':>7}{'gain>0':>7}"
             f"{'ht ahead':>9}{'wall s':>8}{'old+ref':>9}"]
    for i, (m, sd, se, name, n, gain, pos, behind, wall, oldref) in enumerate(rows, 1):
        lines.append(f"{i:<5}{name:<22}{m:>7.3f}{sd:>8.3f}{se:>7.3f}{n:>6}{gain:>+7.3f}{pos:>7}{behind:>9}{wall:>8.0f}{oldref:>9.2f}")
    return "\n".join(lines)


#: settings that must agree for runs from several files to stand in one table (everything but who ran and where)
MERGE_MUST_AGREE = ("rollouts", "eval_split", "eval_images_per_prompt", "eval_max_prompts", "model_name_or_path",
                    "reward", "reward_options", "recipe")
#: what a file written before a setting existed ran with
MERGE_DEFAULTS = {"reward_options": "{}"}


def merge(paths, out: Path) -> dict:
    """One comparison from several invocations (e.g. one process per seed and estimator, two sharing the cores):
    the runs of every ``estimators.json`` in ``paths``, refused when their recipe or evaluation differ or when two
    files hold the same (estimator, ablation, seed)."""
    results = [json.loads(Path(p).read_text()) for p in paths]
    first = results[0]["config"]
    for p, r in zip(paths[1:], results[1:]):
        for key in MERGE_MUST_AGREE:
            theirs, ours = (c.get(key, MERGE_DEFAULTS.get(key)) for c in (r["config"], first))
            if theirs != ours:
                raise SystemExit(f"--merge: {p} has {key}={theirs!r} but {paths[0]} has "
                                 f"{ours!r}; merge only runs made with the same recipe and evaluation")
    runs, seen = [], {}
    for p, r in zip(paths, results):
        for run in r["runs"]:
            key = (run["estimator"], run["ablation"], run["seed"])
            if key in seen:
                raise SystemExit(f"--merge: {p} and {seen[key]} both hold {key[0]}{':' + key[1] if key[1] else ''} "
                                 f"seed {key[2]}; drop one of them")
            seen[key] = p
            runs.append(run)
    runs.sort(key=lambda run: (run["seed"], run["estimator"], run["ablation"]))
    merged = {"config": {**first, "merged_from": [str(p) for p in paths]}, "runs": runs,
              "machines": [r.get("machine") for r in results],  # one per file, in merged_from's order
              "seconds": sum(r.get("seconds", 0.0) for r in results)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimators.json").write_text(json.dumps(merged, indent=1))
    plot(runs, out / "estimators.png")
    return merged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke: 2 rollouts, tiny evaluation, one seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first_seed", type=int, default=0, help="seeds first_seed .. first_seed + seeds - 1")
    p.add_argument("--rollouts", type=int, default=MAIN_JOB_ROLLOUTS,
                   help="rollout batches per run (equal sample budget; default: the main job's)")
    p.add_argument("--eval_every", type=int, default=12, help="evaluate every N rollout batches (and the base model once)")
    p.add_argument("--eval_split", default="heldout", choices=["heldout", "validation"])
    p.add_argument("--eval_images_per_prompt", type=int, default=2)
    p.add_argument("--eval_max_prompts", type=int, default=None)
    p.add_argument("--model_name_or_path", default="shapes-mdm")
    p.add_argument("--runs", default=None, help="comma-separated subset, e.g. 'ht,maskgrpo,ht:uniform_credit'")
    p.add_argument("--output_dir", default="outputs/compare_estimators")
    p.add_argument("--set", dest="overrides", default="{}",
                   help='JSON of HTGRPOConfig fields applied to every run, e.g. \'{"beta": 0.04}\' (tuning on validation)')
    p.add_argument("--count_only", action="store_true", help="only count passes per rollout batch at K = 6, beta > 0")
    p.add_argument("--reward", default="geneval", help="training reward by registry name (geneval, geneval_strict, ...)")
    p.add_argument("--reward_options", default="{}",
                   help='JSON of the reward\'s options, get_reward(name, **options), e.g. \'{"partial_credit": "flow_grpo"}\'')
    p.add_argument("--diagnose", action="store_true",
                   help="also record, at every evaluation, the fully masked context's entropy and KL to the base model, "
                   "and per rollout batch TRL's logs (reward, zero-variance groups, clip fractions) and the "
                   "structure tokens' composition (background share)")
    p.add_argument("--failures", action="store_true",
                   help="also record, at every evaluation, why its images fail (benchmarks/failure_modes.py's table: "
                   "missing objects, absent or malformed, wrong colours and relations per tag); the runs keep no "
                   "checkpoint to run that benchmark on afterwards")
    p.add_argument("--merge", nargs="+", metavar="ESTIMATORS_JSON", default=None,
                   help="train nothing: merge the runs of these estimators.json files into --output_dir and print "
                   "the table (runs of one recipe made in separate processes)")
    a = p.parse_args(argv)
    if a.merge:
        merged = merge(a.merge, Path(a.output_dir))
        print(table(merged["runs"]))
        print(f"wrote {Path(a.output_dir) / 'estimators.json'} and {Path(a.output_dir) / 'estimators.png'}")
        return
    if a.count_only:
        out = Path(a.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        counts = count_passes(a.model_name_or_path)
        (out / "passes_k6_beta.json").write_text(json.dumps(counts, indent=1))
        print_counts(counts)
        return
    extra = json.loads(a.overrides)
    reward_options = json.loads(a.reward_options)
    try:  # a reward that cannot be built fails now, not after the base model's evaluation
        get_reward(a.reward, **reward_options)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--reward {a.reward} --reward_options {a.reward_options}: {e}") from None
    if a.quick:
        a.seeds, a.rollouts, a.eval_every, a.eval_max_prompts = 1, 1, 1, a.eval_max_prompts or 12
        extra = {**extra, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "num_generations": 4,
                 "diffusion_steps": 6, "num_iterations": 3}
    records = list(load_prompts(a.eval_split))[: a.eval_max_prompts]
    runs_wanted = [r for r in RUNS if a.runs is None or (r[0] + (f":{r[1]}" if r[1] else "")) in a.runs.split(",")]
    if a.quick:
        runs_wanted = [r for r in runs_wanted if not r[1]] or runs_wanted
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    K = extra.get("num_iterations", SHAPES_RL["num_iterations"])
    runs_wanted = [(est, abl, {k: ([K, 0, 0] if k == "stage_iterations" else v) for k, v in ov.items()})
                   for est, abl, ov in runs_wanted]  # no_stages follows a changed K
    for est, abl, ov in runs_wanted:  # a --set that one run cannot take fails now, not after an hour
        try:
            with tempfile.TemporaryDirectory() as d:
                run_config(ov, 0, a.rollouts, d, extra)
        except ValueError as e:
            raise SystemExit(f"run {est}{':' + abl if abl else ''} rejects --set {a.overrides}: {e}") from None
    results = {"config": {**vars(a), "recipe": {**SHAPES_RL, **extra}}, "machine": describe_machine(), "runs": []}
    t_all = time.time()
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        for est, abl, ov in runs_wanted:
            with tempfile.TemporaryDirectory() as d:
                r = run_one(a.model_name_or_path, est, abl, ov, seed, a.rollouts, records, a.eval_every,
                            a.eval_images_per_prompt, d, extra, a.diagnose, a.reward, reward_options, a.failures)
            results["runs"].append(r)
            print(f"seed {seed} {est}{':' + abl if abl else ''}: overall {r['overall']:.3f} "
                  f"({r['wall_seconds']:.0f} s train, old+ref {r['old_ref_forwards_per_rollout_batch']:.2f})", flush=True)
            (out / "estimators.json").write_text(json.dumps(results, indent=1))
    if not a.quick and a.runs is None:  # the full comparison also counts passes at K = 6
        results["passes_k6_beta"] = count_passes(a.model_name_or_path)
    results["seconds"] = time.time() - t_all
    (out / "estimators.json").write_text(json.dumps(results, indent=1))
    plot(results["runs"], out / "estimators.png")
    print(table(results["runs"]))
    if "passes_k6_beta" in results:
        print_counts(results["passes_k6_beta"])
    print(f"wrote {out / 'estimators.json'} and {out / 'estimators.png'} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
