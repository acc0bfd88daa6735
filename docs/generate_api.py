"""Write docs/api.md from the code: the public names, every HTGRPOConfig field that GRPOConfig lacks or defaults
differently (with its help text), the rule registries with their knobs, and the logged metrics.

    python docs/generate_api.py          # rewrites docs/api.md; tests/test_config.py fails when it is stale
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

PUBLIC = [
    ("trl_htgrpo.HTGRPOTrainer", "`GRPOTrainer` subclass: GRPOTrainer's arguments in its order, plus `backbone`; `model` is a "
     "model name (`\"shapes-mdm\"`), a folder or hub id of a registered family, or a `PreTrainedModel`"),
    ("trl_htgrpo.HTGRPOConfig", "`GRPOConfig` subclass with the fields below"),
    ("trl_htgrpo.backbones", "`Backbone` (the protocol), `MMaDABackbone`, `LuminaDiMOOBackbone`, `backbone_for`, "
     "`register_backbone`, `BACKBONES`"),
    ("trl_htgrpo.models", "native `LLaDAModelLM` / `MMaDAModelLM` (+ configs, `LLADA_LORA_TARGET_MODULES`), `MAGVITv2`, "
     "`load_vq_decoder`, `find_vq_decoder`, `VQDecoder`"),
    ("trl_htgrpo.rewards", "`GenEvalReward`, the rule engine (`evaluate` -> `Verdict`, whose `failure` is one of `FAILURES`, "
     "`summarize`, ...), `DETECTORS` / "
     "`register_detector`, `REWARDS` / `get_reward` / `register_reward`, `RemoteReward`, the scorers"),
    ("trl_htgrpo.rewards.serve", "`python -m trl_htgrpo.rewards.serve --reward NAME`: any reward over the reward-server "
     "protocol"),
    ("trl_htgrpo.hierarchy", "`PARTITIONS`, `CREDITS`, `STAGES` (rule registries), `stage_schedule`, `stage_candidates`, "
     "`sample_subset`"),
    ("trl_htgrpo.diffusion", "`sample_images` (returns a `Trajectory`), `SAMPLERS` (unmasking rules), `masked_counts`; "
     "`diffusion.estimators`: `ESTIMATORS`, `Estimator`, `EstimatorPlan`"),
    ("trl_htgrpo.rollout", "`RolloutBatch`, `build_rollout`, `loss_inputs`: the path from a rollout to TRL's loss"),
    ("trl_htgrpo.registry", "`Rule`, `Registry`: the base of every registry above"),
    ("trl_htgrpo.plugins", "`load_plugins`, `register_model_name`, the `trl_htgrpo.plugins` entry-point group"),
    ("trl_htgrpo.evaluation", "`run_geneval` (GenEval's layout and summary), `run_dpg` (DPG-Bench's), `score_metrics` "
     "(preference metrics), `evaluate_model`, `evaluate_trainer` (in the trainer, every process), `read_metadata`, "
     "`image_grid`; CLI: `examples/evaluate.py --benchmark shapes|geneval|dpg` (docs/evaluation.md)"),
    ("trl_htgrpo.toy", "the shapes world, a plug-in: codec, scenes, prompts (`load_prompts`), its model, backbone and "
     "detector, `recipes.SHAPES_RL`"),
    ("trl_htgrpo.distributed.end_distributed", "end a gloo run cleanly (barrier, destroy, exit)"),
    ("trl_htgrpo.machine.describe_machine", "what a result ran on (CPU, torch's instruction set, threads, accelerator, "
     "library versions): the `machine` field of `heldout_before_after.json` and `estimators.json`"),
]

METRICS = [
    ("rewards/<func>/<tag>", "mean reward per GenEval tag (when the dataset has a `tag` column)"),
    ("ht/stage", "stage of the inner iteration: 0 global, 1 structure, 2 refinement"),
    ("ht/structure_fraction", "fraction of tokens partitioned as structure"),
    ("ht/credit_weight_max", "largest per-token credit weight (their mean is 1 by construction)"),
    ("ht/contexts", "contexts C of the estimator's plan"),
    ("ht/loss_token_fraction", "loss tokens of the update per image token"),
    ("ht/approx_kl, ht/max_abs_log_ratio", "k3 KL(old, new) over loss tokens; largest /log ratio/ (0 in the first "
     "inner iteration)"),
    ("passes/<phase>_{forwards,tokens}_per_{rollout,update}, passes/policy_backwards_per_{rollout,update}",
     "training model passes (sequences, and the tokens they read) of this process per rollout batch and per "
     "optimizer update, by phase: rollout, old, ref, policy (evaluation passes are not counted)"),
    ("clip_ratio/*, kl, entropy, reward, rewards/<func>/mean|std, ...", "TRL's"),
]


def fields_table() -> list[str]:
    from trl import GRPOConfig

    from trl_htgrpo import HTGRPOConfig

    def default(f):
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    base = {f.name: default(f) for f in dataclasses.fields(GRPOConfig)}
    rows = ["| field | default | help |", "|---|---|---|"]
    for f in dataclasses.fields(HTGRPOConfig):
        if f.name in base and base[f.name] == default(f) and f.name not in ("num_iterations", "disable_dropout", "bf16"):
            continue
        rows.append(f"| `{f.name}` | `{default(f)}` | {f.metadata.get('help', '')} |")
    return rows


def registries_table() -> list[str]:
    from trl_htgrpo.diffusion import SAMPLERS
    from trl_htgrpo.diffusion.estimators import ESTIMATORS
    from trl_htgrpo.hierarchy import CREDITS, PARTITIONS, STAGES

    rows = ["| registry | config field | rule | its knobs |", "|---|---|---|---|"]
    for reg, label in ((ESTIMATORS, "ESTIMATORS"), (PARTITIONS, "PARTITIONS"), (CREDITS, "CREDITS"),
                       (STAGES, "STAGES"), (SAMPLERS, "SAMPLERS")):
        for name, cls in reg.items():
            knobs = ", ".join(f"`{k}`" for k in cls.knobs) or "-"
            rows.append(f"| `{label}` | `{reg.field}` | `{name}` | {knobs} |")
    return rows


def render() -> str:
    out = ["# API", "", "Generated by `python docs/generate_api.py` from the code.", "", "## Public names", "",
           "| name | what |", "|---|---|"]
    out += [f"| `{n}` | {w} |" for n, w in PUBLIC]
    out += ["", "## HTGRPOConfig fields added to GRPOConfig, or with other defaults", "",
            "Every field is a command-line flag of `examples/train_htgrpo.py`.", ""]
    out += fields_table()
    out += ["", "Every other GRPOConfig / TrainingArguments field works as in TRL.", "",
            "## Rule registries", "",
            "Each choice is a rule registered by name; a knob given while another rule of its registry is selected "
            "is an error. Add a rule with `@REGISTRY.register` on a `trl_htgrpo.registry.Rule` subclass.", ""]
    out += registries_table()
    out += ["", "## Logged metrics (beyond TRL's)", "", "| key | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in METRICS]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = Path(__file__).with_name("api.md")
    path.write_text(render())
    print(f"wrote {path}")
