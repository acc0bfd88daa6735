"""Train a masked-diffusion text-to-image model with HT-GRPO.

With no arguments: the main job on the built-in shapes world (bundled base model, bundled training
prompts, the GenEval-style reward, CPU), with a held-out evaluation before and after training:

    accelerate launch examples/train_htgrpo.py
    python examples/train_htgrpo.py --max_steps 2            # smoke run

Every HTGRPOConfig / GRPOConfig field is a flag (``--help``); on GPUs the same script takes
``--model_name_or_path`` of a registered backbone. Writes ``heldout_before_after.json`` to
``--output_dir``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config

from trl_htgrpo import GenEvalReward, HTGRPOConfig, HTGRPOTrainer
from trl_htgrpo.evaluation import evaluate_trainer
from trl_htgrpo.toy import load_prompts
from trl_htgrpo.toy.recipes import MAIN_JOB_ROLLOUTS, SHAPES_RL

# The main job's defaults (tuned on the validation split; see docs/benchmarks.md). Flags override them.
MAIN_JOB_DEFAULTS = dict(
    **SHAPES_RL,
    output_dir="outputs/htgrpo-shapes",
    model_name_or_path="shapes-mdm",
    max_steps=MAIN_JOB_ROLLOUTS * SHAPES_RL["num_iterations"],
    logging_steps=10,
    save_strategy="steps",
    save_steps=3 * SHAPES_RL["num_iterations"],  # a checkpoint every 3 rollout batches (3.3 MB each)
    save_total_limit=2,
    seed=0,
)


@dataclass
class ScriptArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A jsonl file or datasets name with a 'prompt' column and GenEval metadata columns. "
                  "None: the bundled shapes-world training split."},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    eval_split: str = field(default="heldout", metadata={"help": "Bundled split evaluated before and after training."})
    eval_images_per_prompt: int = field(default=2, metadata={"help": "Images per held-out prompt in the before/after evaluation."})
    eval_before_after: bool = field(default=True, metadata={"help": "Evaluate the held-out split before and after training."})
    eval_max_prompts: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N prompts of the held-out split (smoke tests). None: all."}
    )
    strict_reward: bool = field(default=False, metadata={"help": "Train on strict GenEval correctness instead of partial credit."})


def main(script_args: ScriptArguments, training_args: HTGRPOConfig, model_args: ModelConfig):
    if script_args.dataset_name is None:
        train_dataset = load_prompts(script_args.dataset_train_split)
    elif os.path.exists(script_args.dataset_name):
        from datasets import load_dataset

        train_dataset = load_dataset("json", data_files=script_args.dataset_name, split="train")
    else:
        from datasets import load_dataset

        train_dataset = load_dataset(script_args.dataset_name, split=script_args.dataset_train_split)

    trainer = HTGRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=[GenEvalReward(strict=script_args.strict_reward)],
        args=training_args,
        train_dataset=train_dataset,
        peft_config=get_peft_config(model_args),
    )
    results, heldout = {}, list(load_prompts(script_args.eval_split)) if script_args.eval_before_after else []
    if script_args.eval_max_prompts is not None:
        heldout = heldout[: script_args.eval_max_prompts]
    if heldout:
        t0 = time.time()
        results["before"] = evaluate_trainer(trainer, heldout, script_args.eval_images_per_prompt, seed=training_args.seed)
        results["before_seconds"] = time.time() - t0
        trainer.accelerator.print(f"held-out overall before: {results['before']['overall']:.3f}")
    t0 = time.time()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    results["train_seconds"] = time.time() - t0
    trainer.save_model(training_args.output_dir)
    trainer.create_model_card(dataset_name=script_args.dataset_name or "trl-htgrpo shapes world (bundled)")
    if heldout:
        t0 = time.time()
        results["after"] = evaluate_trainer(trainer, heldout, script_args.eval_images_per_prompt, seed=training_args.seed)
        results["after_seconds"] = time.time() - t0
        trainer.accelerator.print(f"held-out overall after:  {results['after']['overall']:.3f}")
        if trainer.accelerator.is_main_process:
            summary = {"before": results["before"]["overall"], "after": results["after"]["overall"],
                       "split": script_args.eval_split, "images_per_prompt": script_args.eval_images_per_prompt,
                       "tags_before": results["before"]["tags"], "tags_after": results["after"]["tags"],
                       "seconds": {k: v for k, v in results.items() if k.endswith("seconds")}}
            with open(os.path.join(training_args.output_dir, "heldout_before_after.json"), "w") as f:
                json.dump(summary, f, indent=1)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    trainer.accelerator.wait_for_everyone()
    return trainer, results


def make_parser() -> TrlParser:
    parser = TrlParser((ScriptArguments, HTGRPOConfig, ModelConfig))
    parser.set_defaults(**MAIN_JOB_DEFAULTS)
    return parser


if __name__ == "__main__":
    from trl_htgrpo.distributed import use_cpu_cores

    use_cpu_cores()
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    main(script_args, training_args, model_args)
    from trl_htgrpo.distributed import end_distributed

    end_distributed()
