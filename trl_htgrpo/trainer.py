"""HTGRPOTrainer: TRL's GRPOTrainer driving a masked-diffusion text-to-image model.

Thin glue over TRL 1.16 (pinned: the overrides touch private methods). What is overridden and why:

* ``_tokenize_prompts``: the backbone lays out prompts (``<t2i> <bos> text <eos> <soi>``), truncating
  over-long ones with one warning.
* ``_generate_single_turn``: images are drawn by the trajectory-recording sampler (guidance, no
  ``model.generate``); the partition, credit weights and the estimator's plan are made here.
* ``_calculate_rewards``: reward functions receive PIL images as ``completions`` (plus every
  dataset column, as TRL passes them); per-tag rewards are logged.
* ``_get_per_token_logps_and_entropies``: ``log p(x_i | prompt, context)`` at masked positions of
  the estimator's contexts instead of a causal shift. Called by TRL for old and reference
  log-probs, it scores every context of the plan at once (C forwards), so TRL decides when
  they are needed and which reference (frozen copy or disabled PEFT adapter) to use.
* ``_generate_and_score_completions``: stores the plan batch-first in the generation batch.
* ``_compute_loss``: selects inner iteration k's tokens, contexts and per-token advantages
  ``A_g * w_{g,i}`` (B, N), then TRL's ``_compute_loss`` applies its clipped surrogate, loss types and KL
  (once per masked copy with UniGRPO's ``unigrpo_num_copies`` > 1, averaged).
Everything else (rewards, group advantages, buffering, loss types, PEFT, DeepSpeed, checkpoints,
logging) is TRL's.
"""

from __future__ import annotations

import copy
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object, is_peft_model
from transformers import GenerationConfig, PreTrainedModel
from trl import GRPOTrainer
from trl.models import prepare_deepspeed, prepare_fsdp, unwrap_model_for_generation
from trl.trainer.utils import disable_dropout_in_model

from .backbones import backbone_for
from .config import HTGRPOConfig
from .diffusion.estimators import get_estimator, prompt_mask as draw_prompt_mask, restrict_to_stages, sample_seeds
from .diffusion.sampler import Trajectory, sample_images
from .hierarchy import credit_weights, partition, stage_schedule
from .logging_utils import log_image_grid
from .toy.pretrained import resolve_model_path

_STAGE_ID = {"global": 0, "structure": 1, "refine": 2}
_CITATION = """@article{htgrpo2026,
    title   = {{Sketch Then Paint: Hierarchical Token GRPO for Diffusion Multimodal LLMs}},
    journal = {arXiv preprint arXiv:2605.16842},
    year    = {2026}
}"""


class _NamedReward:
    """Calls a reward function and names it in any exception it raises."""

    def __init__(self, func, name: str):
        self.func, self.__name__ = func, name

    def __call__(self, *args, **kwargs):
        try:
            return self.func(*args, **kwargs)
        except Exception as e:
            raise RuntimeError(f"reward function {self.__name__!r} raised {type(e).__name__}: {e}") from e


def _reference_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of the policy for the KL reference. Under DeepSpeed ZeRO-3 the policy's parameters are
    already partitioned (``zero3_init_flag``: zero.Init at load) and ``copy.deepcopy`` only copies
    their empty placeholders: build the model again from its config (transformers partitions it the
    same way) and copy the gathered weights in."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    params = list(model.parameters())
    if not (is_deepspeed_zero3_enabled() and any(hasattr(p, "ds_id") for p in params)):
        return copy.deepcopy(model)
    import deepspeed

    ref = type(model)._from_config(copy.deepcopy(model.config), dtype=params[0].dtype)
    ref.generation_config = copy.deepcopy(model.generation_config)
    ref_params = list(ref.parameters())
    with deepspeed.zero.GatheredParameters(params + ref_params, modifier_rank=0):
        with torch.no_grad():
            for p, q in zip(params, ref_params):
                q.data.copy_(p.data)
    with torch.no_grad():
        for b, c in zip(model.buffers(), ref.buffers()):
            c.copy_(b)
    return ref


class HTGRPOTrainer(GRPOTrainer):
    """GRPO for diffusion multimodal LLMs with HT-GRPO's estimator, stages and hierarchical credit.

    Args:
        model: a model id or folder (``"shapes-mdm"`` = the bundled shapes model) or a ``PreTrainedModel``.
        reward_funcs: TRL reward functions; ``completions`` are PIL images.
        args: an :class:`HTGRPOConfig`.
        backbone: the model family's adapter; picked from ``model.config.model_type`` when None.
        Other arguments are GRPOTrainer's.
    """

    _tag_names = ["trl", "grpo", "ht-grpo", "masked-diffusion", "text-to-image"]
    _name = "HT-GRPO"
    _paper = {"title": "Sketch Then Paint: Hierarchical Token GRPO for Diffusion Multimodal LLMs", "id": "2605.16842",
              "citation": _CITATION}

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs,
        args: HTGRPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        reward_processing_classes=None,
        callbacks=None,
        optimizers=(None, None),
        peft_config=None,
        backbone=None,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = HTGRPOConfig(output_dir=f"{Path(str(name)).name or 'model'}-HT-GRPO")
        if not isinstance(args, HTGRPOConfig):
            raise TypeError(f"args must be an HTGRPOConfig, got {type(args).__name__}; build one with HTGRPOConfig(**fields)")
        for split, ds in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            cols = getattr(ds, "column_names", None) or []
            if isinstance(cols, dict):
                cols = next(iter(cols.values()), [])
            if ds is not None and cols and "prompt" not in cols:
                raise ValueError(f"{split} needs a 'prompt' column with the text prompts; it has {cols}")
            if {"image", "images"} & set(cols):
                raise ValueError(f"{split} has a column named 'image(s)', which switches TRL to its VLM path; rename it")
        if isinstance(model, str):
            from . import models  # noqa: F401  (registers the Auto classes)
            from transformers import AutoModel, AutoTokenizer

            path = resolve_model_path(model)
            model = AutoModel.from_pretrained(path, **(args.model_init_kwargs or {}))
            processing_class = processing_class or AutoTokenizer.from_pretrained(path)
        if processing_class is None:
            from transformers import AutoTokenizer

            processing_class = AutoTokenizer.from_pretrained(model.config._name_or_path)
        if getattr(model, "generation_config", None) is None:
            model.generation_config = GenerationConfig()
        self.backbone = backbone or backbone_for(model, processing_class)
        if peft_config is not None and str(getattr(peft_config, "task_type", None) or "") == "CAUSAL_LM":
            # TRL's ModelConfig defaults lora_task_type to CAUSAL_LM, whose PEFT wrapper needs a generate() API
            # that masked-diffusion models do not have; the generic PeftModel is what they need
            peft_config = copy.copy(peft_config)
            peft_config.task_type = None
        self.estimator = get_estimator(args.estimator)(args)
        # tokens every model input row adds to its prompt: the image and the backbone's special tokens
        # (MMaDA's <|eoi|>, Lumina-DiMOO's row ends and tail); measured once on an empty prompt
        empty = torch.zeros((1, 0), dtype=torch.long)
        image = torch.full((1, self.backbone.num_image_tokens), self.backbone.mask_token_id, dtype=torch.long)
        self._row_overhead = self.backbone.build_inputs(empty, empty, image)[0].shape[1]
        self._pending: dict[str, Any] | None = None  # plan of the rollout batch being scored
        self._active: dict[str, Any] | None = None  # contexts, token_context, seeds during a loss pass
        self._rollouts = 0  # every rollout batch (seeds the sampler)
        self._train_rollouts = 0  # training rollout batches (the unit of the pass counts)
        self._first_update = 0  # global_step when counting began (a resumed run starts above 0)
        self._last_samples: list = []
        #: cumulative model passes of this process, in sequences (rows) and tokens, by phase
        self.pass_counts: Counter = Counter()
        self._logps_calls = 0  # log-prob calls since the last rollout (old first when TRL needs it, then ref)

        # TRL would rebuild a full-model reference from config._name_or_path (a hub id or nothing for a
        # model built from a config); we copy the policy instead, and prepare it as TRL does.
        own_ref = args.beta != 0.0 and peft_config is None and not is_peft_model(model)
        beta = args.beta
        if own_ref:
            ref = _reference_copy(model).eval().requires_grad_(False)
            args.beta = 0.0
        try:
            super().__init__(
                model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset,
                eval_dataset=eval_dataset, processing_class=processing_class,
                reward_processing_classes=reward_processing_classes, callbacks=callbacks,
                optimizers=optimizers, peft_config=peft_config,
            )
        finally:
            args.beta = beta
        if own_ref:
            self.beta = beta
            if args.disable_dropout:
                disable_dropout_in_model(ref)
            if self.is_deepspeed_enabled:
                self.ref_model = prepare_deepspeed(ref, self.accelerator)
            elif self.is_fsdp_enabled:
                self.ref_model = prepare_fsdp(ref, self.accelerator)
            else:
                self.ref_model = self.accelerator.prepare_model(ref, evaluation_mode=True)
        self.reward_funcs = [
            f if isinstance(f, torch.nn.Module) else _NamedReward(f, n) for f, n in zip(self.reward_funcs, self.reward_func_names)
        ]

    # ------------------------------------------------------------------ rollout
    def _tokenize_prompts(self, prompts: list):
        texts = []
        for p in prompts:
            if isinstance(p, list):  # conversational: the last user message's text
                content = [m for m in p if m.get("role") == "user"][-1]["content"]
                p = content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)
            texts.append(p)
        return self.backbone.encode_prompts(texts), None, {}

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        args = self.args
        seed = zlib.crc32(f"{args.seed}-{self.accelerator.process_index}-{self._rollouts}".encode())
        self._rollouts += 1
        if self.model.training:
            if not self._train_rollouts:  # pass counts start here, also when resuming from a checkpoint
                self._first_update = self.state.global_step
            self._train_rollouts += 1
        gen = torch.Generator(device=self.accelerator.device).manual_seed(seed)
        chunk = args.generation_micro_batch_size or len(prompt_ids)
        cfg = args.guidance_scale != 0.0
        trajs = []
        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=args.ds3_gather_for_generation
        ) as unwrapped:
            for i in range(0, len(prompt_ids), chunk):
                part = prompt_ids[i : i + chunk]
                trajs.append(sample_images(
                    unwrapped, self.backbone, part, steps=args.diffusion_steps,
                    guidance_scale=args.guidance_scale, temperature=args.temperature,
                    reveal_noise=args.reveal_noise, schedule=args.mask_schedule, generator=gen,
                ))
                # T steps of the chunk's rows (twice with guidance), padded to its longest prompt
                rows = args.diffusion_steps * len(part) * (2 if cfg else 1)
                longest = max(len(p) for p in list(part) + ([self.backbone.unconditional_prompt()] if cfg else []))
                self._count("rollout", rows, rows * self._seq_tokens(longest))
        traj = Trajectory(*(torch.cat([getattr(t, f) for t in trajs]) for f in Trajectory.__dataclass_fields__))
        self._logps_calls = 0
        structure = partition(traj.reveal_step, traj.confidence, traj.masked_entropy, args.partition,
                              args.structure_fraction, args.entropy_threshold)  # (B, N)
        seeds = sample_seeds(traj.codes, args.seed)
        plan = self.estimator.plan(traj.codes, structure, seeds, self.num_iterations, traj.reveal_step)
        stages = stage_schedule(args.stage_iterations)
        if args.estimator != "ht" and any(st != "global" for st in stages):  # a baseline asked for stages
            plan = restrict_to_stages(plan, stages, structure)
        weights = credit_weights(structure, traj.reveal_step, traj.entropy, traj.steps, args.credit,
                                 args.structure_weight, args.credit_strength, args.credit_signal)  # (B, N)
        self._pending = {"traj": traj, "structure": structure, "plan": plan, "weights": weights, "seeds": seeds}
        return self.backbone.codes_to_ids(traj.codes).tolist(), None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        codes = self.backbone.ids_to_codes(torch.tensor(completion_ids_list))
        images = self.backbone.decode_images(codes)
        self._last_samples = list(zip(prompts, images))
        rewards = super()._calculate_rewards(inputs, prompts, images, completion_ids_list)  # (B_global, F)
        if "tag" in inputs[0]:
            mode = "train" if self.model.training else "eval"
            tags = gather_object([x["tag"] for x in inputs])
            for j, name in enumerate(self.reward_func_names):
                for tag in sorted(set(tags)):
                    sel = torch.tensor([t == tag for t in tags], device=rewards.device)
                    self._metrics[mode][f"rewards/{name}/{tag}"].append(torch.nanmean(rewards[sel, j]).item())
        return rewards

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        pending, self._pending = self._pending, None
        plan, B = pending["plan"], out["completion_ids"].shape[0]
        R = plan.token_context.shape[1]  # K * copies loss rows
        local = (plan.token_context >= 0).sum(dim=(0, 2)).float()  # (R,)
        total = self.accelerator.gather(local[None]).sum(0)  # (R,) loss tokens per loss row, all ranks
        out["ht_contexts"] = plan.contexts  # (B, C, N)
        out["ht_token_context"] = plan.token_context  # (B, R, N)
        out["ht_weights"] = pending["weights"]  # (B, N)
        out["ht_structure"] = pending["structure"]  # (B, N) bool
        out["ht_seeds"] = torch.tensor(pending["seeds"], dtype=torch.long, device=out["ht_weights"].device)  # (B,)
        out["ht_items"] = total[None].expand(B, R).contiguous()  # (B, R), same row everywhere
        mode = "train" if self.model.training else "eval"
        m = self._metrics[mode]
        m["ht/structure_fraction"].append(self.accelerator.gather(pending["structure"].float().mean()[None]).mean().item())
        w = self.accelerator.gather(pending["weights"])
        m["ht/credit_weight_mean"].append(w.mean().item())
        m["ht/credit_weight_max"].append(w.max().item())
        m["ht/contexts"].append(float(plan.contexts.shape[1]))
        return out

    # ------------------------------------------------------------------ log-probs
    def _context_logps(self, model, prompt_ids, prompt_mask, targets, masked, batch_size, context=0, seeds=None,
                       prompt_mask_prob=0.0):
        """log p(x_i | prompt, context) and entropy at masked positions (0 elsewhere). All (B, N)."""
        bb, N = self.backbone, targets.shape[1]
        if prompt_mask_prob > 0:  # d1: mask prompt tokens, seeded per image and context
            drop = draw_prompt_mask(prompt_mask, prompt_mask_prob, seeds, context)
            prompt_ids = torch.where(drop, bb.mask_token_id, prompt_ids)
        logps, ents = [], []
        for i in range(0, targets.shape[0], batch_size):
            sl = slice(i, i + batch_size)
            image_ids = torch.where(masked[sl], bb.mask_token_id, bb.codes_to_ids(targets[sl]))
            ids, attn = bb.build_inputs(prompt_ids[sl], prompt_mask[sl], image_ids)
            logits = bb.image_logits(bb.forward_logits(model, ids, attn), prompt_ids.shape[1])
            logp_all = torch.log_softmax(logits.float() / self.temperature, dim=-1)  # (b, N, V)
            logps.append(logp_all.gather(-1, targets[sl, :, None]).squeeze(-1) * masked[sl])
            ents.append(-(logp_all.exp() * logp_all).sum(-1) * masked[sl])
        return torch.cat(logps), torch.cat(ents)

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
        compute_aux_loss=False, **unused,
    ):
        N = self.backbone.num_image_tokens
        if logits_to_keep != N:
            raise ValueError(f"completions have {logits_to_keep} tokens, the backbone's images {N}")
        prompt_ids, prompt_mask = input_ids[:, :-N], attention_mask[:, :-N]
        targets = self.backbone.ids_to_codes(input_ids[:, -N:])  # (B, N)
        B = input_ids.shape[0]
        batch_size = batch_size or B
        if self._active is None:  # old / reference log-probs of the rollout batch: every context, (B, C*N)
            phase = ("old", "ref")[self._logps_calls] if self._old_logps_needed() else "ref"
            self._logps_calls += 1
            plan, seeds = self._pending["plan"], self._pending["seeds"]
            contexts = plan.contexts
            self._count(phase, B * contexts.shape[1], B * contexts.shape[1] * self._seq_tokens(prompt_ids.shape[1]))
            if contexts.shape[0] != B:
                raise RuntimeError(f"plan rows {contexts.shape[0]} != batch rows {B}")
            outs = [self._context_logps(model, prompt_ids, prompt_mask, targets, contexts[:, c], batch_size, c, seeds,
                                        plan.prompt_mask_prob) for c in range(contexts.shape[1])]
            return torch.cat([o[0] for o in outs], 1), torch.cat([o[1] for o in outs], 1), None
        contexts, token_context = self._active["contexts"], self._active["token_context"]  # (B, C, N), (B, N)
        seeds, prob = self._active["seeds"], self._active["prompt_mask_prob"]
        logps = torch.zeros(B, N, device=input_ids.device)
        ents = torch.zeros(B, N, device=input_ids.device)
        for c in token_context.unique().tolist():
            if c < 0:
                continue
            rows = (token_context == c).any(-1).nonzero().squeeze(-1)  # only rows that read context c
            self._count("policy", rows.numel(), rows.numel() * self._seq_tokens(prompt_ids.shape[1]))
            lp, en = self._context_logps(model, prompt_ids[rows], prompt_mask[rows], targets[rows],
                                         contexts[rows, c], batch_size, c, [seeds[r] for r in rows.tolist()], prob)
            use = token_context[rows] == c
            logps[rows] = torch.where(use, lp, logps[rows])
            ents[rows] = torch.where(use, en, ents[rows])
        self._last_policy_logps = logps.detach()
        return logps, (ents if compute_entropy else None), None

    def _old_logps_needed(self) -> bool:
        """TRL computes old log-probs only when generation and optimizer steps are misaligned."""
        return self.args.gradient_accumulation_steps % (self.args.steps_per_generation * self.num_iterations) != 0

    def _seq_tokens(self, prompt_length: int) -> int:
        """Tokens of one model input row whose (padded) prompt has ``prompt_length`` tokens."""
        return prompt_length + self._row_overhead

    def _count(self, phase: str, rows: int, tokens: int) -> None:
        """Count training model passes: ``rows`` sequences of ``tokens`` tokens in total (policy passes also
        backward). Evaluation (``eval_dataset``) passes are not counted."""
        if not self.model.training:
            return
        self.pass_counts[f"{phase}_forwards"] += rows
        self.pass_counts[f"{phase}_tokens"] += tokens
        if phase == "policy" and torch.is_grad_enabled():
            self.pass_counts["policy_backwards"] += rows

    # ------------------------------------------------------------------ loss
    def _inner_iteration(self) -> int:
        if not self.model.training:
            return 0
        return (self._step // self.args.steps_per_generation) % self.num_iterations

    def _compute_loss(self, model, inputs):
        """GRPO loss of inner iteration k: TRL's, on the tokens and contexts of the plan's row k (the mean
        over rows k * M .. k * M + M - 1 for M masked copies per image)."""
        M = self.estimator.copies
        k = self._inner_iteration()
        losses = [self._row_loss(model, inputs, k, k * M + j) for j in range(M)]
        return losses[0] if M == 1 else torch.stack(losses).mean()

    def _row_loss(self, model, inputs, k: int, row: int):
        contexts, token_context = inputs["ht_contexts"], inputs["ht_token_context"][:, row]  # (B, C, N), (B, N)
        B, C, N = contexts.shape
        idx = token_context.clamp(min=0)[:, None]  # (B, 1, N)
        stage_inputs = dict(inputs)
        for key in ("old_per_token_logps", "ref_per_token_logps"):
            if inputs.get(key) is not None:
                stage_inputs[key] = inputs[key].view(B, C, N).gather(1, idx).squeeze(1)  # (B, N)
        stage_inputs["completion_mask"] = (token_context >= 0).long()  # (B, N) loss tokens of iteration k
        stage_inputs["advantages"] = inputs["advantages"][:, None] * inputs["ht_weights"]  # (B, N)
        stage_inputs["num_items_in_batch"] = inputs["ht_items"][0, row]
        self._active = {"contexts": contexts, "token_context": token_context, "seeds": inputs["ht_seeds"].tolist(),
                        "prompt_mask_prob": self.estimator.prompt_mask_prob}  # a Python float, as for old / ref
        try:
            loss = super()._compute_loss(model, stage_inputs)
        finally:
            self._active = None
        mode = "train" if self.model.training else "eval"
        with torch.no_grad():
            mask = stage_inputs["completion_mask"].bool()
            old = stage_inputs.get("old_per_token_logps")
            log_ratio = (self._last_policy_logps - old)[mask] if old is not None else torch.zeros(1)
            approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()  # k3 estimate of KL(old || new)
            self._metrics[mode]["ht/approx_kl"].append(self.accelerator.gather(approx_kl[None]).nanmean().item())
            max_lr = log_ratio.abs().max() if log_ratio.numel() else torch.zeros(())
            self._metrics[mode]["ht/max_abs_log_ratio"].append(self.accelerator.gather(max_lr[None]).max().item())
            self._metrics[mode]["ht/stage"].append(float(_STAGE_ID[stage_schedule(self.args.stage_iterations)[k]]))
            self._metrics[mode]["ht/loss_token_fraction"].append(mask.float().mean().item())
        return loss

    # ------------------------------------------------------------------ logging and hub
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        step = self.state.global_step
        every = self.args.log_images_steps
        if self.model.training and every and step % every == 0 and self._last_samples and getattr(self, "_img_step", -1) != step:
            self._img_step = step
            if self.is_world_process_zero():
                log_image_grid(self, self._last_samples[: self.args.log_images_count], step)
        if self.model.training and self._train_rollouts:
            updates = self.state.global_step - self._first_update
            for key, value in sorted(self.pass_counts.items()):  # model passes (and tokens), this process
                logs[f"passes/{key}_per_rollout"] = value / self._train_rollouts
                if updates:
                    logs[f"passes/{key}_per_update"] = value / updates
        super().log(logs, start_time)

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        path = os.path.join(self.args.output_dir, "README.md")
        if not self.is_world_process_zero() or not os.path.exists(path):
            return
        a = self.args
        fields = ["estimator", "num_iterations", "stage_iterations", "partition", "structure_fraction",
                  "entropy_threshold", "credit", "structure_weight", "credit_strength", "token_sample_ratio",
                  "refine_context", *self.estimator.knobs, "diffusion_steps", "guidance_scale", "mask_schedule",
                  "num_generations", "beta", "loss_type", "epsilon", "learning_rate"]
        fields = list(dict.fromkeys(fields))
        rows = "\n".join(f"| `{f}` | `{getattr(a, f)}` |" for f in fields)
        with open(path, "a") as fh:
            fh.write(
                "\n## HT-GRPO\n\nTrained with HT-GRPO (\"Sketch Then Paint\", [arXiv 2605.16842]"
                "(https://arxiv.org/abs/2605.16842)) using [trl-htgrpo](https://github.com/trl-htgrpo): GRPO for "
                f"masked-diffusion text-to-image models. Backbone adapter: `{self.backbone.name}`.\n\n"
                f"| config field | value |\n|---|---|\n{rows}\n"
            )
