"""HTGRPOConfig: TRL's GRPOConfig plus the sampler and HT-GRPO fields."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Literal

from trl import GRPOConfig

from .diffusion.estimators import ESTIMATORS
from .diffusion.schedules import SCHEDULES


def default_stage_iterations(num_iterations: int) -> list[int]:
    """Split K inner iterations as evenly as possible into (global, structure, refine), the
    remainder going to global first, then structure: 1 -> (1, 0, 0), 3 -> (1, 1, 1), 4 -> (2, 1, 1)."""
    base, rem = divmod(num_iterations, 3)
    return [base + (rem > 0), base + (rem > 1), base]


@dataclass
class HTGRPOConfig(GRPOConfig):
    r"""
    Configuration of [`HTGRPOTrainer`]: every field of TRL's `GRPOConfig`, plus the sampler of the
    masked-diffusion model and HT-GRPO ("Sketch Then Paint", arXiv 2605.16842).

    Defaults that differ from `GRPOConfig`:

    > - `num_iterations`: `3` instead of `1` (one global, one structure and one refinement update per rollout batch).
    > - `disable_dropout`: `True` instead of `False`, so that the first inner iteration's ratio is exactly 1.
    > - `bf16`: `None` resolves to `True` only when a CUDA device is present (TRL's `True` fails on CPU).
    > - `use_cpu`: switched on for a multi-process launch on a machine without an accelerator (gloo ranks).
    > - `mask_truncated_completions` must stay `False`: fixed-length images have no EOS.
    > - `use_vllm` must stay `False`: images are drawn by the built-in sampler.

    Parameters that control the sampler: `diffusion_steps`, `guidance_scale`, `mask_schedule`, `reveal_noise`,
    `generation_micro_batch_size`, and TRL's `temperature`.

    Parameters of HT-GRPO: `estimator`, `stage_iterations`, `partition`, `structure_fraction`, `entropy_threshold`,
    `credit`, `structure_weight`, `credit_strength`, `credit_signal`, `token_sample_ratio`, `refine_context`.

    Parameters of the baselines (`estimator="unigrpo" | "d1" | "maskgrpo" | "trace"`, each knob belongs to one):
    `unigrpo_mask_range`, `unigrpo_num_copies`, `d1_prompt_mask_prob`, `maskgrpo_min_mask_rate`, `trace_block_size`.

    Logging: `log_images_steps`, `log_images_count`.
    """

    # ---- defaults that differ from GRPOConfig
    num_iterations: int = field(
        default=3,
        metadata={"help": "Number of policy updates per rollout batch (K, the inner loop). Split over stages by `stage_iterations`."},
    )
    disable_dropout: bool = field(
        default=True,
        metadata={"help": "Disable dropout in the policy and reference models (keeps the first ratio of a rollout batch at 1)."},
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision. None: on when a CUDA device is present, off on CPU (TRL's True fails on CPU)."},
    )

    # ---- sampler
    diffusion_steps: int = field(
        default=12, metadata={"help": "Unmasking steps T per image. MMaDA uses 12 to 15, Lumina-DiMOO 64."}
    )
    guidance_scale: float = field(
        default=3.5,
        metadata={"help": "Classifier-free guidance w in (1 + w) cond - w uncond during rollouts (MMaDA: 3.5). 0 disables it."},
    )
    mask_schedule: str = field(
        default="cosine", metadata={"help": "Mask schedule of the sampler.", "choices": sorted(SCHEDULES)}
    )
    reveal_noise: float = field(
        default=1.0,
        metadata={"help": "Scale of the Gumbel noise added to confidences when choosing tokens to reveal, annealed by (1 - t/T) (MMaDA's temperature)."},
    )
    generation_micro_batch_size: int | None = field(
        default=None, metadata={"help": "Images sampled per forward batch during rollouts. None: the whole local generation batch."}
    )

    # ---- HT-GRPO
    estimator: str = field(
        default="ht",
        metadata={"help": "Importance-ratio estimator: 'ht' (HT-GRPO) or a baseline.", "choices": sorted(ESTIMATORS)},
    )
    stage_iterations: list[int] | None = field(
        default=None,
        metadata={
            "help": "Inner iterations per stage (n_global n_struct n_refine), summing to num_iterations. "
            "None: split num_iterations evenly (3 -> 1 1 1) for estimator='ht'; every iteration global (K 0 0), i.e. "
            "no stage schedule, for the baselines. Given with a baseline, its stages restrict the loss tokens.",
            "nargs": 3,
        },
    )
    partition: Literal["entropy", "step"] = field(
        default="entropy",
        metadata={"help": "Structure/refinement split of each image's tokens: 'entropy' (boundary where the mean masked "
                  "entropy falls below entropy_threshold x its start value) or 'step' (first structure_fraction of reveal order)."},
    )
    structure_fraction: float = field(
        default=0.3, metadata={"help": "Fraction of tokens, in reveal order, that are structure with partition='step'. In (0, 1)."}
    )
    entropy_threshold: float = field(
        default=0.5, metadata={"help": "Relative entropy level that ends the structure phase with partition='entropy'. In (0, 1)."}
    )
    credit: Literal["uniform", "two_level", "continuous"] | None = field(
        default=None,
        metadata={"help": "Hierarchical credit assignment: per-token advantage A_g * w_i with w of mean 1 per image. "
                  "None: 'two_level' for estimator='ht', 'uniform' for the baselines."},
    )
    structure_weight: float = field(
        default=2.0, metadata={"help": "w on structure tokens (before rescaling to mean 1) with credit='two_level'. >= 1 favours layout."}
    )
    credit_strength: float = field(
        default=1.0, metadata={"help": "lambda in w = 1 + lambda * phi with credit='continuous'."}
    )
    credit_signal: Literal["earliness", "entropy"] = field(
        default="earliness", metadata={"help": "phi with credit='continuous': earliness of reveal or entropy at reveal."}
    )
    token_sample_ratio: float = field(
        default=0.5, metadata={"help": "Fraction of a stage's candidate tokens that carries loss in an inner iteration. In (0, 1]."}
    )
    refine_context: Literal["sketch", "masked"] = field(
        default="masked",
        metadata={"help": "Context of the refinement stage: 'masked' (fully masked, as the other stages: one context) or "
                  "'sketch' (structure revealed: paint given the sketch; two contexts). 'masked' won on the validation "
                  "split (docs/benchmarks.md)."},
    )

    # ---- baselines (each knob belongs to one estimator; giving it with another is an error)
    unigrpo_mask_range: list[float] = field(
        default_factory=lambda: [0.1, 0.9],
        metadata={"help": "UniGRPO: per image and iteration t ~ U[lo, hi], each image token masked with probability t.", "nargs": 2},
    )
    unigrpo_num_copies: int = field(
        default=1,
        metadata={"help": "UniGRPO: masked copies M per image in every inner iteration, each with its own t; the loss is "
                  "their mean. Costs K*M old and K*M reference forwards per rollout batch and M policy forwards and "
                  "backwards per iteration, and keeps M graphs (activation memory) until the backward."},
    )
    d1_prompt_mask_prob: float = field(
        default=0.15, metadata={"help": "d1: probability of masking each prompt token (image fully masked)."}
    )
    maskgrpo_min_mask_rate: float = field(
        default=0.7, metadata={"help": "MaskGRPO: r_min of the remask ratio r_k = min(r_min + (1 - r_min)(k+1)/K, 0.999); 0.6 to 0.8."}
    )
    trace_block_size: int = field(
        default=2, metadata={"help": "TraceRL: sampler steps per block; each block is scored given every earlier block."}
    )

    # ---- logging
    log_images_steps: int = field(
        default=50, metadata={"help": "Log a grid of rollout images with their prompts every N steps to report_to trackers (0: never)."}
    )
    log_images_count: int = field(default=16, metadata={"help": "Images in each logged grid."})

    def __post_init__(self):
        import os

        import torch

        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available():
            # accelerate's multi-GPU and DeepSpeed launchers ignore a yaml's use_cpu: without this, every
            # process of a CPU-only launch trains alone (world size 1) and they overwrite one output_dir
            self.use_cpu = True
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and not self.use_cpu and not self.fp16)
        errors = []
        if self.estimator not in ESTIMATORS:
            errors.append(f"estimator={self.estimator!r} is unknown; valid estimators: {sorted(ESTIMATORS)}")
        if self.credit is None:
            self.credit = "two_level" if self.estimator == "ht" else "uniform"
        self.unigrpo_mask_range = [float(x) for x in self.unigrpo_mask_range]
        defaults = {f.name: (f.default_factory() if f.default_factory is not MISSING else f.default) for f in fields(self)}
        if self.estimator in ESTIMATORS:
            for name, est in ESTIMATORS.items():
                if name == self.estimator:
                    continue
                for knob in est.knobs:
                    if getattr(self, knob) != defaults[knob]:
                        errors.append(f"{knob}={getattr(self, knob)!r} belongs to estimator='{name}' but estimator="
                                      f"'{self.estimator}'; remove it or set estimator='{name}'")
        if self.stage_iterations is None:  # HT-GRPO's three stages; the baselines' single global stage
            ht = self.estimator == "ht"
            self.stage_iterations = default_stage_iterations(self.num_iterations) if ht else [self.num_iterations, 0, 0]
        self.stage_iterations = [int(x) for x in self.stage_iterations]
        if len(self.stage_iterations) != 3 or min(self.stage_iterations) < 0:
            errors.append(f"stage_iterations={self.stage_iterations} must be three non-negative ints (n_global, n_struct, n_refine)")
        elif sum(self.stage_iterations) != self.num_iterations:
            errors.append(
                f"stage_iterations={self.stage_iterations} sums to {sum(self.stage_iterations)} but num_iterations="
                f"{self.num_iterations}; make them agree, e.g. stage_iterations={default_stage_iterations(self.num_iterations)}"
            )
        # HT-GRPO's partition and credit knobs act only in the mode that reads them: given elsewhere -> error
        for knob, active, mode in (
            ("structure_weight", self.credit == "two_level", "credit='two_level'"),
            ("credit_strength", self.credit == "continuous", "credit='continuous'"),
            ("credit_signal", self.credit == "continuous", "credit='continuous'"),
            ("structure_fraction", self.partition == "step", "partition='step'"),
            ("entropy_threshold", self.partition == "entropy", "partition='entropy'"),
        ):
            if getattr(self, knob) != defaults[knob] and not active:
                errors.append(f"{knob}={getattr(self, knob)!r} only acts with {mode}; remove it or set {mode}")
        staged = len(self.stage_iterations) == 3 and sum(self.stage_iterations[1:]) > 0
        if self.credit != "two_level" and not staged:  # nothing reads the structure/refinement partition
            for knob in ("partition", "structure_fraction", "entropy_threshold"):
                if getattr(self, knob) != defaults[knob]:
                    errors.append(f"{knob}={getattr(self, knob)!r} has no effect with credit={self.credit!r} and no "
                                  "structure or refinement stage; remove it, or set credit='two_level' or stage_iterations")
        if self.refine_context != defaults["refine_context"] and len(self.stage_iterations) == 3 and not self.stage_iterations[2]:
            errors.append(f"refine_context={self.refine_context!r} has no effect without a refinement stage "
                          f"(stage_iterations={self.stage_iterations}); remove it or give the refinement stage iterations")
        if self.unigrpo_num_copies > 1 and getattr(self, "use_adaptive_entropy", False):
            errors.append("use_adaptive_entropy=True with unigrpo_num_copies > 1 would update the entropy coefficient once "
                          "per copy; use one or the other")
        if self.unigrpo_num_copies < 1:
            errors.append(f"unigrpo_num_copies={self.unigrpo_num_copies} must be >= 1")
        lo, hi = self.unigrpo_mask_range
        if not 0 < lo <= hi <= 1:
            errors.append(f"unigrpo_mask_range={self.unigrpo_mask_range} must satisfy 0 < lo <= hi <= 1")
        if not 0 <= self.d1_prompt_mask_prob < 1:
            errors.append(f"d1_prompt_mask_prob={self.d1_prompt_mask_prob} must lie in [0, 1)")
        if not 0 < self.maskgrpo_min_mask_rate < 1:
            errors.append(f"maskgrpo_min_mask_rate={self.maskgrpo_min_mask_rate} must lie in (0, 1)")
        if self.trace_block_size < 1:
            errors.append(f"trace_block_size={self.trace_block_size} must be >= 1")
        for name, lo_open, hi_closed in (("token_sample_ratio", 0, 1), ("structure_fraction", 0, 1), ("entropy_threshold", 0, 1)):
            v = getattr(self, name)
            ok = lo_open < v <= hi_closed if name == "token_sample_ratio" else lo_open < v < hi_closed
            if not ok:
                errors.append(f"{name}={v} must lie in ({lo_open}, {hi_closed}{']' if name == 'token_sample_ratio' else ')'}")
        for name, allowed in (
            ("partition", ("entropy", "step")), ("credit", ("uniform", "two_level", "continuous")),
            ("credit_signal", ("earliness", "entropy")), ("refine_context", ("sketch", "masked")),
            ("mask_schedule", tuple(sorted(SCHEDULES))),
        ):
            if getattr(self, name) not in allowed:
                errors.append(f"{name}={getattr(self, name)!r} is unknown; choose one of {list(allowed)}")
        if self.structure_weight <= 0:
            errors.append(f"structure_weight={self.structure_weight} must be > 0")
        if self.diffusion_steps < 1:
            errors.append(f"diffusion_steps={self.diffusion_steps} must be >= 1")
        if self.mask_truncated_completions:
            errors.append("mask_truncated_completions=True would mask every image (fixed-length images have no EOS); set it to False")
        if self.use_vllm:
            errors.append("use_vllm=True is not supported: images are drawn by the built-in masked-diffusion sampler; set it to False")
        if errors:
            raise ValueError("Invalid HTGRPOConfig:\n  - " + "\n  - ".join(errors))
        super().__post_init__()
