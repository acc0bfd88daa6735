"""HTGRPOTrainer: TRL's GRPOTrainer driving a masked-diffusion text-to-image model.

Thin glue over TRL 1.16 (pinned: the overrides touch private methods; ``tests/test_trl_contract.py`` fails when a
TRL release changes one). One rollout batch, top to bottom:

1. ``_tokenize_prompts``: the backbone lays out the prompts.
2. ``_generate_single_turn``: the sampler draws B images (one seeded generator per image) and
   :func:`~trl_htgrpo.rollout.build_rollout` makes their partition, credit weights and estimator plan, a
   :class:`~trl_htgrpo.rollout.RolloutBatch`; its completion is the image once per context (B, C * N).
3. ``_get_per_token_logps_and_entropies``: TRL asks for old and reference log-probs of every (context, token);
   the estimator scores them (``Estimator.score``). The attention mask TRL passes says which pairs it needs.
4. ``_calculate_rewards``: reward functions receive the decoded PIL images (TRL runs them, sync or async).
5. ``_generate_and_score_completions``: the RolloutBatch joins TRL's generation batch as batch-first ``ht_*``
   tensors, which TRL shuffles and splits with everything else.
6. ``_compute_loss``: inner iteration k's loss is TRL's on the (context, token) pairs of ``plan.loss_mask[:, k]``
   with per-token advantages ``A_g * w_{g,i}`` (:func:`~trl_htgrpo.rollout.loss_inputs`); the policy's log-probs
   come back through step 3.

Between TRL's calls, data lives in one place, ``self._scope`` (:class:`_Scope`). Rewards, group advantages,
buffering, loss types, KL, PEFT, DeepSpeed, checkpoints and logging are TRL's.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import gather_object, is_peft_model
from trl import GRPOTrainer
from trl.models import unwrap_model_for_generation

from .backbones.common import adapters_disabled
from .config import HTGRPOConfig
from .diffusion.estimators import ESTIMATORS
from .diffusion.sampler import Trajectory, sample_images
from .hierarchy import CREDITS, PARTITIONS, STAGES, stage_schedule
from .logging_utils import log_image_grid
from .model_card import htgrpo_card_section
from .rewards.calling import named
from .rollout import RolloutBatch, build_rollout, loss_inputs
from .training.passes import PassCounter
from .training.reference import prepare_reference, reference_copy
from .training.resume import load_run_state, save_run_state
from .training.setup import check_datasets, generic_peft_config, load_model, make_backbone, sampling_settings


@dataclass
class _Scope:
    """What survives between TRL's calls, open only while TRL scores rows (``HTGRPOTrainer._scoring``):
    ``rollout`` holds the rows being scored (the local rollout batch, set by ``_generate_single_turn``, during
    generation; one micro-batch during its loss) and ``logps`` the last log-probs computed for them."""

    rollout: RolloutBatch | None = None
    logps: torch.Tensor | None = None  # (B, C * N)


class HTGRPOTrainer(GRPOTrainer):
    """GRPO for diffusion multimodal LLMs with HT-GRPO's estimator, stages and hierarchical credit.

    Takes GRPOTrainer's arguments in GRPOTrainer's order, plus ``backbone`` (the model family's adapter; picked
    from ``model.config.model_type`` when None). ``model``: a model name (``"shapes-mdm"``), a folder or hub id
    of a registered family, or a ``PreTrainedModel``; ``reward_funcs`` receive PIL images as ``completions``.
    ``tools``, ``rollout_func`` and ``environment_factory`` cannot apply to image generation and are refused.
    """

    _tag_names = ["trl", "grpo", "ht-grpo", "masked-diffusion", "text-to-image"]
    _name = "HT-GRPO"
    _paper = {"title": "Sketch Then Paint: Hierarchical Token GRPO for Diffusion Multimodal LLMs", "id": "2605.16842",
              "citation": "@article{htgrpo2026,\n    title   = {{Sketch Then Paint: Hierarchical Token GRPO for "
                          "Diffusion Multimodal LLMs}},\n    journal = {arXiv preprint arXiv:2605.16842},\n    year    "
                          "= {2026}\n}"}

    def __init__(self, model, reward_funcs=None, args: HTGRPOConfig | None = None, train_dataset=None,
                 eval_dataset=None, processing_class=None, reward_processing_classes=None, callbacks=None,
                 optimizers=(None, None), quantization_config=None, peft_config=None, tools=None, rollout_func=None,
                 environment_factory=None, backbone=None):
        for arg, value in (("tools", tools), ("rollout_func", rollout_func), ("environment_factory", environment_factory)):
            if value is not None:
                raise ValueError(f"{arg} is not supported by HTGRPOTrainer: images are drawn by the masked-diffusion "
                                 f"sampler in one turn; remove {arg}")
        if reward_funcs is None:
            raise ValueError("reward_funcs is required: HTGRPOTrainer trains on rewards of the decoded images")
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = HTGRPOConfig(output_dir=f"{Path(str(name)).name or 'model'}-HT-GRPO")
        if not isinstance(args, HTGRPOConfig):
            raise TypeError(f"args must be an HTGRPOConfig, got {type(args).__name__}; build one with HTGRPOConfig(**fields)")
        check_datasets(train_dataset, eval_dataset)
        model, processing_class, checkpoint = load_model(model, processing_class, args, quantization_config)
        self.backbone = backbone or make_backbone(model, processing_class, args, checkpoint)
        self.sampling = sampling_settings(args, self.backbone)
        peft_config = generic_peft_config(peft_config)
        self.partition = PARTITIONS[args.partition](args)
        self.credit = CREDITS[args.credit](args)
        self.estimator = ESTIMATORS[args.estimator](args)
        self.stages = stage_schedule(args.stage_iterations)
        self.passes = PassCounter()
        self._row_lengths: dict[int, int] = {}  # prompt length -> tokens of the model input row (see _seq_tokens)
        self._scope: _Scope | None = None
        self._rollouts = {"train": 0, "eval": 0}  # rollout batches drawn (they seed the sampler)
        self._last_samples: list = []

        # TRL would rebuild a full-model reference from config._name_or_path (a hub id, or nothing for a model
        # built from a config): we copy the policy instead, and prepare it (and its sync) as TRL does.
        own_ref = args.beta != 0.0 and peft_config is None and not is_peft_model(model)
        beta, sync, init_kwargs = args.beta, args.sync_ref_model, args.model_init_kwargs
        ref = reference_copy(model).eval().requires_grad_(False) if own_ref else None
        if own_ref:
            args.beta, args.sync_ref_model = 0.0, False
        args.model_init_kwargs = None  # already used by load_model (TRL would say they are ignored)
        try:
            super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset,
                             eval_dataset=eval_dataset, processing_class=processing_class,
                             reward_processing_classes=reward_processing_classes, callbacks=callbacks,
                             optimizers=optimizers, peft_config=peft_config)
        finally:
            args.beta, args.sync_ref_model, args.model_init_kwargs = beta, sync, init_kwargs
        if own_ref:
            self.beta = beta
            prepare_reference(self, ref, sync)
        self.backbone.to(self.accelerator.device)  # its VQ decoder, loaded now: a missing one fails before training
        self.max_completion_length = self.backbone.num_image_tokens  # dr_grpo normalises by N
        for f in self.reward_funcs:
            if callable(getattr(f, "bind_backbone", None)):
                f.bind_backbone(self.backbone)  # e.g. GenEvalReward picks the backbone's detector
            if callable(getattr(f, "load", None)) and not isinstance(f, torch.nn.Module):
                f.load()  # reward models load now: a missing one fails before any rollout
        self.reward_funcs = [f if isinstance(f, torch.nn.Module) else named(f, n)
                             for f, n in zip(self.reward_funcs, self.reward_func_names)]

    @contextlib.contextmanager
    def _scoring(self, rollout: RolloutBatch | None = None):
        """Open :class:`_Scope` for the rows of ``rollout`` (or for a rollout about to be drawn)."""
        if self._scope is not None:
            raise RuntimeError("HTGRPOTrainer: a scoring scope is already open")
        self._scope = _Scope(rollout)
        try:
            yield self._scope
        finally:
            self._scope = None

    # ------------------------------------------------------------------ rollout
    def _tokenize_prompts(self, prompts: list):
        texts = []
        for p in prompts:
            if isinstance(p, list):  # conversational: the last user message's text
                content = [m for m in p if m.get("role") == "user"][-1]["content"]
                p = content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)
            texts.append(p)
        return self.backbone.encode_prompts(texts), None, {}

    def _generate_and_score_completions(self, inputs):
        with self._scoring() as scope:
            out = super()._generate_and_score_completions(inputs)
            rollout = scope.rollout
        out.update(rollout.to_inputs())
        m = self._metrics["train" if self.model.training else "eval"]
        m["ht/structure_fraction"].append(self.accelerator.gather(rollout.structure.float().mean()[None]).mean().item())
        w = self.accelerator.gather(rollout.weights)
        m["ht/credit_weight_max"].append(w.max().item())
        m["ht/contexts"].append(float(rollout.num_contexts))
        return out

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        mode = "train" if self.model.training else "eval"
        rollout_index, self._rollouts[mode] = self._rollouts[mode], self._rollouts[mode] + 1
        first_row = self.accelerator.process_index * len(prompt_ids)  # TRL's row of this process in the batch
        seeds = [zlib.crc32(f"{self.args.seed}-{mode}-{rollout_index}-{first_row + i}".encode())
                 for i in range(len(prompt_ids))]
        chunk = self.args.generation_micro_batch_size or len(prompt_ids)
        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as unwrapped:
            trajs = [sample_images(unwrapped, self.backbone, prompt_ids[i : i + chunk], seeds=seeds[i : i + chunk],
                                   **self.sampling) for i in range(0, len(prompt_ids), chunk)]
        if mode == "train":
            self.passes.start_rollout(self.state.global_step)
            branches = 2 if self.sampling["guidance_scale"] != 0.0 else 1
            uncond = [self.backbone.unconditional_prompt()] if branches == 2 else []
            for i in range(0, len(prompt_ids), chunk):  # T forwards of each chunk's rows, padded to its longest
                part = list(prompt_ids[i : i + chunk])
                rows = self.sampling["steps"] * len(part) * branches
                self.passes.count("rollout", rows, rows * self._seq_tokens(max(len(p) for p in part + uncond)))
        traj = Trajectory(*(torch.cat([getattr(t, f) for t in trajs]) for f in Trajectory.__dataclass_fields__))
        self._scope.rollout = build_rollout(traj, self.partition, self.credit, self.estimator, self.stages,
                                            self.args.seed, self.accelerator.gather)
        return self._scope.rollout.completion_ids(self.backbone).tolist(), None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        images = self.backbone.decode_images(self._scope.rollout.trajectory.codes)
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

    # ------------------------------------------------------------------ log-probs
    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **unused):
        """log p(x_i | prompt, context c) and its entropy, (B, C * N) context-major, for the (context, token)
        pairs TRL's attention mask asks for (all of them for old / reference log-probs, iteration k's loss
        tokens for the policy); 0 elsewhere."""
        rows = self._scope.rollout if self._scope is not None else None
        if rows is None:
            raise RuntimeError("HTGRPOTrainer scores rows only inside a rollout or loss scope")
        B, C, N = rows.plan.contexts.shape
        if logits_to_keep != C * N or input_ids.shape[0] != B:
            raise ValueError(f"TRL asked for {logits_to_keep} tokens of {input_ids.shape[0]} rows; the rollout has "
                             f"{B} rows of {C} contexts x {N} image tokens")
        prompt_ids, prompt_mask = input_ids[:, :-logits_to_keep], attention_mask[:, :-logits_to_keep]
        need = attention_mask[:, -logits_to_keep:].view(B, C, N).bool()  # (B, C, N)
        guidance = self.sampling["guidance_scale"] if self.args.guided_ratios else 0.0
        if self.model.training:
            phase = self._phase(model)
            rows_needed = int(need.any(-1).sum())  # one forward per (row, needed context), two with guidance
            tokens = rows_needed * self._seq_tokens(prompt_ids.shape[1])
            if guidance:
                tokens += rows_needed * self._seq_tokens(len(self.backbone.unconditional_prompt()))
            self.passes.count(phase, rows_needed * (2 if guidance else 1), tokens, phase == "policy")
        logps, ents = self.estimator.score(model, self.backbone, prompt_ids, prompt_mask, rows.trajectory.codes,
                                           rows.plan.contexts, need, rows.seeds.tolist(), self.temperature,
                                           batch_size or B, guidance)
        self._scope.logps = logps.flatten(1).detach()
        return logps.flatten(1), (ents.flatten(1) if compute_entropy else None), None

    def _phase(self, model) -> str:
        """The pass TRL runs, from what it passes: the reference model (or the policy with its adapter off, TRL's
        PEFT reference), the policy under autograd (the loss), or the policy without (old log-probs)."""
        if torch.is_grad_enabled():
            return "policy"
        return "ref" if model is self.ref_model or adapters_disabled(model) else "old"

    def _seq_tokens(self, prompt_length: int) -> int:
        """Tokens of one model input row whose (padded) prompt has ``prompt_length`` tokens: the backbone's layout
        adds the image and its special tokens (and MMaDA pads to its fixed text block); measured once per length."""
        if prompt_length not in self._row_lengths:
            prompt = torch.zeros((1, prompt_length), dtype=torch.long)
            image = torch.full((1, self.backbone.num_image_tokens), self.backbone.mask_token_id, dtype=torch.long)
            layout = type(self.backbone).build_inputs  # the layout itself, not a model input to be counted
            self._row_lengths[prompt_length] = layout(self.backbone, prompt, prompt, image)[0].shape[1]
        return self._row_lengths[prompt_length]

    # ------------------------------------------------------------------ loss
    def _inner_iteration(self) -> int:
        """k of the micro-batch being trained: TRL reuses a generation batch for num_iterations rounds of
        steps_per_generation micro-steps (``GRPOTrainer._prepare_inputs``); 0 in evaluation."""
        if not self.model.training:
            return 0
        return (self._step // self.args.steps_per_generation) % self.num_iterations

    def _compute_loss(self, model, inputs):
        k = self._inner_iteration()
        rollout = RolloutBatch.from_inputs(inputs)
        stage_inputs = loss_inputs(inputs, rollout, k)
        with self._scoring(rollout) as scope:
            loss = super()._compute_loss(model, stage_inputs)
            policy = scope.logps
        with torch.no_grad():
            mask = stage_inputs["completion_mask"].bool()
            old = stage_inputs.get("old_per_token_logps")
            log_ratio = (policy - old)[mask] if old is not None else torch.zeros(1, device=policy.device)
            approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()  # k3 estimate of KL(old || new)
            m = self._metrics["train" if self.model.training else "eval"]
            m["ht/approx_kl"].append(self.accelerator.gather(approx_kl[None]).nanmean().item())
            max_lr = log_ratio.abs().max() if log_ratio.numel() else torch.zeros((), device=policy.device)
            m["ht/max_abs_log_ratio"].append(self.accelerator.gather(max_lr[None]).max().item())
            m["ht/stage"].append(float(list(STAGES).index(self.stages[k])))  # 0 global, 1 structure, 2 refine
            m["ht/loss_token_fraction"].append(mask.float().sum().item() / (mask.shape[0] * self.max_completion_length))
        return loss

    # ------------------------------------------------------------------ checkpoints, logging and hub
    def _save_checkpoint(self, model, trial):
        """TRL's checkpoint plus what an exact resume needs (:mod:`~trl_htgrpo.training.resume`)."""
        super()._save_checkpoint(model, trial)
        save_run_state(self, os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_run_state(self, resume_from_checkpoint)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        step, every = self.state.global_step, self.args.log_images_steps
        if self.model.training and every and step % every == 0 and self._last_samples and getattr(self, "_img_step", -1) != step:
            self._img_step = step
            if self.is_world_process_zero():
                log_image_grid(self, self._last_samples[: self.args.log_images_count], step)
        if self.model.training:
            logs.update(self.passes.logs(self.state.global_step))
        super().log(logs, start_time)

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        path = os.path.join(self.args.output_dir, "README.md")
        if self.is_world_process_zero() and os.path.exists(path):
            with open(path, "a") as fh:
                fh.write(htgrpo_card_section(self))
