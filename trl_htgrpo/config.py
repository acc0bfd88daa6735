"""HTGRPOConfig: TRL's GRPOConfig plus the sampler and HT-GRPO fields.

The choices of ``estimator``, ``partition`` and ``credit``, and the checks of the knobs each choice reads, come
from the rule registries (:mod:`trl_htgrpo.registry`): a rule registered there is a valid choice here.
"""

from __future__ import annotations

import math
import os
from dataclasses import MISSING, dataclass, field, fields

from trl import GRPOConfig

from .diffusion.estimators import ESTIMATORS
from .diffusion.schedules import SCHEDULES
from .diffusion.unmasking import SAMPLERS
from .hierarchy import CREDITS, PARTITIONS, STAGES, default_stage_iterations, stage_schedule

@dataclass
class HTGRPOConfig(GRPOConfig):
    r"""
    Configuration of [`HTGRPOTrainer`]: every field of TRL's `GRPOConfig`, plus the sampler of the
    masked-diffusion model and HT-GRPO ("Sketch Then Paint", arXiv 2605.16842).

    Defaults that differ from `GRPOConfig`:

    > - `num_iterations`: `3` instead of `1` (one global, one structure and one refinement update per rollout batch).
    > - `disable_dropout`: `True` instead of `False`, so that the first inner iteration's ratio is exactly 1.
    > - `bf16`: `None` resolves to `True` only when a CUDA device is present (TRL's `True` fails on CPU).
    > - `activation_checkpointing`: `True` unless `gradient_checkpointing` is given (TRL's default, under transformers 5's name).
    > - `dataloader_pin_memory`: switched off when there is no accelerator (nothing to pin for).
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
    activation_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Activation (gradient) checkpointing to trade compute for memory. None: the deprecated "
                  "`gradient_checkpointing` if given, else True (TRL's default), without transformers 5's warning."},
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of `activation_checkpointing` (transformers 5)."},
    )

    # ---- sampler
    sampler: str | None = field(
        default=None,
        metadata={"help": "Unmasking rule of the rollouts: 'mmada' or 'lumina_dimoo' (each family's published loop, "
                  "exactly) or 'maskgit' (the shapes world's). None: the backbone's own.", "choices": sorted(SAMPLERS)},
    )
    diffusion_steps: int | None = field(
        default=None, metadata={"help": "Unmasking steps T per image. None: the backbone's (MMaDA 15, Lumina-DiMOO 64, shapes 12)."}
    )
    guidance_scale: float | None = field(
        default=None,
        metadata={"help": "Classifier-free guidance w in (1 + w) cond - w uncond during rollouts. 0 disables it. "
                  "None: the backbone's (MMaDA 3.5, Lumina-DiMOO 4.0, shapes 2.0)."},
    )
    mask_schedule: str = field(
        default="cosine", metadata={"help": "Mask schedule of the sampler.", "choices": sorted(SCHEDULES)}
    )
    reveal_noise: float = field(
        default=1.0,
        metadata={"help": "Scale s of the Gumbel noise added to confidences when choosing tokens to reveal (MMaDA's "
                  "and Lumina-DiMOO's `temperature`): compounded by (1 - (t+1)/T) each step with sampler='mmada', "
                  "constant with 'lumina_dimoo', annealed linearly with 'maskgit'."},
    )
    vq_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "VQ image decoder when the checkpoint holds none: MMaDA decodes with showlab/magvitv2 (a folder or "
                  "hub id); Lumina-DiMOO's checkpoint holds its VQModel in vqvae/, found without this flag."},
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Image side in pixels for backbones whose size is a choice (Lumina-DiMOO: a multiple of 16, "
                  "published default 1024; 512 costs a quarter of the tokens). None: the backbone's. MMaDA's is fixed "
                  "by its checkpoint (num_vq_tokens 1024 = 512 px)."},
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
    partition: str = field(
        default="entropy",
        metadata={"help": "Structure/refinement split of each image's tokens: 'entropy' (boundary where the mean masked "
                  "entropy falls below entropy_threshold x its start value), 'step' (first structure_fraction of reveal order) or "
                  "'decision' (the structure_fraction of tokens with the highest entropy at reveal).",
                  "choices": sorted(PARTITIONS)},
    )
    structure_fraction: float = field(
        default=0.3, metadata={"help": "Fraction of tokens that are structure with partition='step' (first in reveal order) or "
                  "'decision' (highest entropy at reveal). In (0, 1)."}
    )
    entropy_threshold: float = field(
        default=0.5, metadata={"help": "Relative entropy level that ends the structure phase with partition='entropy'. In (0, 1)."}
    )
    credit: str | None = field(
        default=None,
        metadata={"help": "Hierarchical credit assignment: per-token advantage A_g * w_i with w of mean 1 per image. "
                  "None: 'two_level' for estimator='ht', 'uniform' for the baselines.", "choices": sorted(CREDITS)},
    )
    structure_weight: float = field(
        default=2.0, metadata={"help": "w on structure tokens (before rescaling to mean 1) with credit='two_level'. >= 1 favours layout."}
    )
    credit_strength: float = field(
        default=1.0, metadata={"help": "lambda in w = 1 + lambda * phi with credit='continuous'."}
    )
    credit_signal: str = field(
        default="earliness", metadata={"help": "phi with credit='continuous': earliness of reveal or entropy at reveal."}
    )
    token_sample_ratio: float = field(
        default=0.5, metadata={"help": "Fraction of a stage's candidate tokens that carries loss in an inner iteration. In (0, 1]."}
    )
    guided_ratios: bool = field(
        default=False,
        metadata={"help": "Score old, reference and policy log-probs under the rollout's classifier-free guidance "
                  "((1 + w) cond - w uncond with the sampler's w), the distribution the images were drawn from, instead "
                  "of the conditional alone. Doubles the scoring forwards and backwards."},
    )
    refine_context: str = field(
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
        metadata={"help": "UniGRPO: masked copies M per image in every inner iteration, each with its own t; the iteration's "
                  "loss is one GRPO loss over every (copy, token) pair. Costs K*M old and K*M reference forwards per rollout "
                  "batch and M policy forwards and backwards per iteration, and keeps M graphs (activation memory) until "
                  "the backward."},
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
        import torch

        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available():
            # accelerate's multi-GPU and DeepSpeed launchers ignore a yaml's use_cpu: without this, every
            # process of a CPU-only launch trains alone (world size 1) and they overwrite one output_dir
            self.use_cpu = True
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and not self.use_cpu and not self.fp16)
        if self.dataloader_pin_memory and (self.use_cpu or not torch.accelerator.is_available()):
            self.dataloader_pin_memory = False  # nothing to pin for (torch warns on every epoch otherwise)
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = True  # TRL's default, under transformers 5's name
        self.unigrpo_mask_range = [float(x) for x in self.unigrpo_mask_range]
        errors = self._errors()
        if errors:
            raise ValueError("Invalid HTGRPOConfig:\n  - " + "\n  - ".join(errors))
        super().__post_init__()
        if self.pad_to_multiple_of is not None:  # "auto" pads on Neuron devices
            raise ValueError(f"pad_to_multiple_of={self.pad_to_multiple_of} (from 'auto' on this device) would pad "
                             "images beyond their fixed length; set pad_to_multiple_of=None")

    def _errors(self) -> list[str]:
        """Every problem of the HT-GRPO fields, each naming the field and the fix."""
        defaults = {f.name: (f.default_factory() if f.default_factory is not MISSING else f.default) for f in fields(self)}
        errors = []
        for registry in (ESTIMATORS, PARTITIONS, CREDITS):
            if getattr(self, registry.field) is not None and getattr(self, registry.field) not in registry:
                errors.append(f"{registry.field}={getattr(self, registry.field)!r} is unknown; choose one of {sorted(registry)}")
        if errors:
            return errors
        estimator = ESTIMATORS[self.estimator]
        if self.credit is None:
            self.credit = estimator.default_credit
        if self.stage_iterations is None:
            self.stage_iterations = estimator.default_stage_iterations(self.num_iterations)
        self.stage_iterations = [int(x) for x in self.stage_iterations]
        if len(self.stage_iterations) != len(STAGES) or min(self.stage_iterations) < 0:
            errors.append(f"stage_iterations={self.stage_iterations} must be {len(STAGES)} non-negative ints "
                          f"(iterations of the stages {list(STAGES)})")
        elif sum(self.stage_iterations) != self.num_iterations:
            errors.append(
                f"stage_iterations={self.stage_iterations} sums to {sum(self.stage_iterations)} but num_iterations="
                f"{self.num_iterations}; make them agree, e.g. stage_iterations={default_stage_iterations(self.num_iterations)}"
            )
        # the selected rules check their knobs; the knobs of the others must not be given
        for registry in (ESTIMATORS, PARTITIONS, CREDITS):
            errors += registry.knob_errors([getattr(self, registry.field)], self, defaults)
            errors += registry[getattr(self, registry.field)].check(self)
        stages = stage_schedule(self.stage_iterations) if not errors else []
        reads_partition = CREDITS[self.credit].reads_partition or any(STAGES[s].reads_partition for s in stages)
        if not reads_partition and not errors:  # nothing reads the structure/refinement partition
            for knob in ("partition", *{k for cls in PARTITIONS.values() for k in cls.knobs}):
                if getattr(self, knob) != defaults[knob]:
                    errors.append(f"{knob}={getattr(self, knob)!r} has no effect with credit={self.credit!r} and no "
                                  "structure or refinement stage; remove it, or set credit='two_level' or stage_iterations")
        if self.refine_context != defaults["refine_context"] and stages and "refine" not in stages:
            errors.append(f"refine_context={self.refine_context!r} has no effect without a refinement stage "
                          f"(stage_iterations={self.stage_iterations}); remove it or give the refinement stage iterations")
        # the sampler
        if self.sampler is not None and self.sampler not in SAMPLERS:
            errors.append(f"sampler={self.sampler!r} is unknown; choose one of {sorted(SAMPLERS)}")
        if self.diffusion_steps is not None and self.diffusion_steps < 1:
            errors.append(f"diffusion_steps={self.diffusion_steps} must be >= 1")
        if self.guidance_scale is not None and not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 0):
            errors.append(f"guidance_scale={self.guidance_scale} must be a finite number >= 0 (0 disables guidance)")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            errors.append(f"temperature={self.temperature} must be a finite number > 0")
        if not (math.isfinite(self.reveal_noise) and self.reveal_noise >= 0):
            errors.append(f"reveal_noise={self.reveal_noise} must be a finite number >= 0")
        if self.mask_schedule not in SCHEDULES:
            errors.append(f"mask_schedule={self.mask_schedule!r} is unknown; choose one of {sorted(SCHEDULES)}")
        if self.generation_micro_batch_size is not None and self.generation_micro_batch_size < 1:
            errors.append(f"generation_micro_batch_size={self.generation_micro_batch_size} must be >= 1 or None")
        # TRL features that cannot apply to fixed-length images drawn by our sampler
        if self.mask_truncated_completions:
            errors.append("mask_truncated_completions=True would mask every image (fixed-length images have no EOS); set it to False")
        if self.pad_to_multiple_of not in (None, "auto") and str(self.pad_to_multiple_of).lower() not in ("none", "null"):
            errors.append(f"pad_to_multiple_of={self.pad_to_multiple_of} would pad images beyond their fixed length; set it to None")
        if self.use_vllm:
            errors.append("use_vllm=True is not supported: images are drawn by the built-in masked-diffusion sampler; set it to False")
        return errors
