"""Train a masked-diffusion text-to-image model with HT-GRPO.

With no arguments: the main job on the built-in shapes world (bundled base model, bundled training
prompts, the GenEval-style reward, CPU), with a held-out evaluation before and after training:

    accelerate launch examples/train_htgrpo.py
    python examples/train_htgrpo.py --max_steps 2            # smoke run

On GPUs the same script trains MMaDA or Lumina-DiMOO (docs/backbones.md), e.g. with MaskGRPO's recipe:

    accelerate launch --config_file examples/accelerate_configs/zero2.yaml examples/train_htgrpo.py \\
        --model_name_or_path Gen-Verse/MMaDA-8B-Base --vq_model_name_or_path showlab/magvitv2 \\
        --dataset_name prompts.jsonl --reward_funcs geneval hpsv2 --reward_weights 1.0 0.5 \\
        --use_peft --lora_r 128 --lora_alpha 64 --lora_target_modules <LLADA_LORA_TARGET_MODULES> ...

Every HTGRPOConfig / GRPOConfig field is a flag (``--help``); ``--reward_funcs`` takes names of the reward
registry (``trl_htgrpo.rewards.REWARDS``: geneval, clipscore, pickscore, hpsv2, imagereward, aesthetic, vlm_judge,
compressibility, the remote servers ...), combined by TRL's ``--reward_weights`` and
``--multi_objective_aggregation``. Writes ``heldout_before_after.json`` to ``--output_dir`` when it evaluates.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config, get_quantization_config

from trl_htgrpo import HTGRPOConfig, HTGRPOTrainer
from trl_htgrpo.evaluation import evaluate_trainer, read_metadata
from trl_htgrpo.machine import describe_machine
from trl_htgrpo.rewards import get_reward

SHAPES = "shapes-mdm"


@dataclass
class ScriptArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A jsonl file or datasets name with a 'prompt' column (and GenEval metadata columns for the "
                  "geneval reward). None: the bundled shapes-world training split (only with the shapes model)."},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["geneval"],
        metadata={"help": "Reward functions by registry name (trl_htgrpo.rewards.REWARDS), combined with TRL's "
                  "reward_weights and multi_objective_aggregation."},
    )
    eval_metadata: str | None = field(
        default=None,
        metadata={"help": "GenEval metadata (jsonl) evaluated before and after training with the backbone's detector. "
                  "None: the bundled held-out split for the shapes model, no evaluation for other models."},
    )
    eval_split: str = field(default="heldout", metadata={"help": "Bundled shapes split evaluated before and after."})
    eval_images_per_prompt: int = field(default=2, metadata={"help": "Images per evaluation prompt."})
    eval_before_after: bool = field(default=True, metadata={"help": "Evaluate before and after training."})
    eval_max_prompts: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N prompts (smoke tests). None: all."}
    )
    strict_reward: bool = field(default=False, metadata={"help": "Train on strict GenEval correctness (geneval_strict)."})


def is_shapes_world(name_or_path: str) -> bool:
    """The bundled shapes model, or a folder holding a shapes-world model (its config.json's model_type)."""
    if name_or_path == SHAPES:
        return True
    from trl_htgrpo.toy import ShapesDiffusionConfig

    config = os.path.join(name_or_path, "config.json")
    if not os.path.isfile(config):
        return False
    with open(config) as f:
        return json.load(f).get("model_type") == ShapesDiffusionConfig.model_type


def _shapes(model_args) -> bool:
    return is_shapes_world(model_args.model_name_or_path)


def load_data(script_args: ScriptArguments, model_args: ModelConfig):
    if script_args.dataset_name is None:
        if not _shapes(model_args):
            raise ValueError("--dataset_name is required with --model_name_or_path other than the bundled shapes model: "
                             "a jsonl file or hub dataset with a 'prompt' column")
        from trl_htgrpo.toy import load_prompts

        return load_prompts(script_args.dataset_train_split)
    from datasets import load_dataset

    if os.path.exists(script_args.dataset_name):
        return load_dataset("json", data_files=script_args.dataset_name, split="train")
    return load_dataset(script_args.dataset_name, split=script_args.dataset_train_split)


def eval_records(script_args: ScriptArguments, model_args: ModelConfig) -> list[dict]:
    if not script_args.eval_before_after:
        return []
    if script_args.eval_metadata is not None:
        records = read_metadata(script_args.eval_metadata)
    elif _shapes(model_args):
        from trl_htgrpo.toy import load_prompts

        records = list(load_prompts(script_args.eval_split))
    else:
        print("no --eval_metadata: skipping the evaluation before and after training")
        return []
    return records[: script_args.eval_max_prompts]


def main(script_args: ScriptArguments, training_args: HTGRPOConfig, model_args: ModelConfig):
    names = ["geneval_strict" if (n == "geneval" and script_args.strict_reward) else n for n in script_args.reward_funcs]
    rewards = [get_reward(name) for name in names]  # unknown names fail here, before any model is loaded
    train_dataset = load_data(script_args, model_args)
    # how TRL's own grpo script loads the model: ModelConfig's dtype, attention and revision, then --model_init_kwargs
    model_init_kwargs = {k: v for k, v in dict(revision=model_args.model_revision, dtype=model_args.dtype,
                                                attn_implementation=model_args.attn_implementation).items() if v is not None}
    training_args.model_init_kwargs = {**model_init_kwargs, **(training_args.model_init_kwargs or {})}
    trainer = HTGRPOTrainer(model=model_args.model_name_or_path, reward_funcs=rewards, args=training_args,
                            train_dataset=train_dataset, peft_config=get_peft_config(model_args),
                            quantization_config=get_quantization_config(model_args))
    results, records = {}, eval_records(script_args, model_args)
    if records:
        t0 = time.time()
        results["before"] = evaluate_trainer(trainer, records, script_args.eval_images_per_prompt, seed=training_args.seed,
                                             desc="evaluation before training")
        results["before_seconds"] = time.time() - t0
        trainer.accelerator.print(f"held-out overall before: {results['before']['overall']:.3f}")
    t0 = time.time()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    results["train_seconds"] = time.time() - t0
    trainer.save_model(training_args.output_dir)
    trainer.create_model_card(dataset_name=script_args.dataset_name or "trl-htgrpo shapes world (bundled)")
    if records:
        t0 = time.time()
        results["after"] = evaluate_trainer(trainer, records, script_args.eval_images_per_prompt, seed=training_args.seed,
                                            desc="evaluation after training")
        results["after_seconds"] = time.time() - t0
        trainer.accelerator.print(f"held-out overall after:  {results['after']['overall']:.3f}")
        if trainer.accelerator.is_main_process:
            summary = {"before": results["before"]["overall"], "after": results["after"]["overall"],
                       "split": script_args.eval_metadata or script_args.eval_split,
                       "images_per_prompt": script_args.eval_images_per_prompt,
                       "tags_before": results["before"]["tags"], "tags_after": results["after"]["tags"],
                       "seconds": {k: v for k, v in results.items() if k.endswith("seconds")},
                       "machine": describe_machine()}  # what it ran on (trl_htgrpo/machine.py)
            with open(os.path.join(training_args.output_dir, "heldout_before_after.json"), "w") as f:
                json.dump(summary, f, indent=1)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    trainer.accelerator.wait_for_everyone()
    return trainer, results


#: defaults for any other model: the sampler, image size and decoder come from the backbone (its published settings)
DEFAULTS = dict(output_dir="outputs/htgrpo", model_name_or_path=SHAPES, logging_steps=10, save_strategy="steps",
                save_steps=100, report_to="none")


def make_parser(argv: list[str] | None = None) -> TrlParser:
    """The parser, with the shapes world's main-job recipe as defaults when the model is a shapes-world model (no
    ``--model_name_or_path``, ``shapes-mdm``, or a folder of one) and plain defaults otherwise. Flags override both."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    model = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--model_name_or_path"),
                 next((a.split("=", 1)[1] for a in argv if a.startswith("--model_name_or_path=")), SHAPES))
    parser = TrlParser((ScriptArguments, HTGRPOConfig, ModelConfig))
    if is_shapes_world(model):
        from trl_htgrpo.toy.recipes import MAIN_JOB_DEFAULTS

        parser.set_defaults(**MAIN_JOB_DEFAULTS)
    else:
        parser.set_defaults(**DEFAULTS)
    return parser


if __name__ == "__main__":
    from trl_htgrpo.distributed import end_distributed, use_cpu_cores

    use_cpu_cores()
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    main(script_args, training_args, model_args)
    end_distributed()
