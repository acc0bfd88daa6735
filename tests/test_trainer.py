"""HTGRPOTrainer end to end on a tiny shapes model: ratios, masks, rewards, PEFT, checkpoints, hub."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from tiny_shapes import fast_args, make_tiny_model
from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

from trl_htgrpo import GenEvalReward, HTGRPOTrainer
from trl_htgrpo.diffusion.estimators import image_seeds
from trl_htgrpo.hierarchy import stage_candidates
from trl_htgrpo.rollout import RolloutBatch


def redness(completions, **kwargs):
    """Mean red channel of each image, in [0, 1]."""
    return [float(np.asarray(img)[..., 0].mean() / 255.0) for img in completions]


def _history(trainer, key):
    return [h[key] for h in trainer.state.log_history if key in h]


def test_first_inner_iteration_has_ratio_one_and_stages_follow_the_schedule(tiny_model_dir, train_dataset, tmp_path):
    # K = 3 inner iterations, one optimizer step each (GA = spg = 1): steps 1-3 reuse one rollout batch.
    args = fast_args(tmp_path, max_steps=3, learning_rate=5e-2, beta=0.0, refine_context="sketch")
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train()
    dev = _history(trainer, "ht/max_abs_log_ratio")
    assert dev[0] == 0.0  # before any update: old == current, ratio exactly 1
    assert dev[1] > 1e-4  # after one update the ratio moved
    assert _history(trainer, "ht/stage") == [0.0, 1.0, 2.0]  # global, structure, refinement
    assert _history(trainer, "ht/contexts")[0] == 2.0  # fully masked + sketch


def test_kl_is_zero_before_the_first_update_with_full_model_reference(tmp_path, train_dataset):
    model, tok = make_tiny_model(seed=1)  # built from a config: nothing to reload from a hub
    init = {k: v.clone() for k, v in model.state_dict().items()}
    args = fast_args(tmp_path, max_steps=2, beta=0.1, learning_rate=5e-2)
    trainer = HTGRPOTrainer(model, reward_funcs=redness, args=args, train_dataset=train_dataset, processing_class=tok)
    assert trainer.ref_model is not None and trainer.beta == 0.1
    trainer.train()
    kl = _history(trainer, "kl")
    assert kl[0] == 0.0 and kl[1] > 0.0  # reference == policy before the first update, then they part
    for k, v in trainer.ref_model.state_dict().items():
        assert torch.equal(v, init[k]), f"reference weight {k} moved"
    assert any(not torch.equal(v, init[k]) for k, v in trainer.model.state_dict().items())


def test_plan_survives_trl_shuffle_and_split(tiny_model_dir, train_dataset, tmp_path):
    args = fast_args(tmp_path, refine_context="sketch")  # two contexts: fully masked and sketch
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    rows = [dict(train_dataset[i // 4]) for i in range(8)]  # 2 prompts x 4 generations
    batch = trainer._generate_and_score_completions(rows)
    assert batch["ht_loss_mask"].shape == (8, 3, 2, 144) and batch["old_per_token_logps"].shape == (8, 2 * 144)
    assert batch["completion_ids"].shape == (8, 2 * 144)  # the image once per context
    torch.manual_seed(3)
    for part in split_tensor_dict(shuffle_sequence_dict(batch), 2):
        rollout = RolloutBatch.from_inputs(part)
        codes = rollout.trajectory.codes
        assert torch.equal(trainer.backbone.codes_to_ids(codes).repeat(1, 2), part["completion_ids"])
        plan = trainer.estimator.plan(rollout.trajectory, rollout.structure,
                                      stage_candidates(trainer.stages, rollout.structure), trainer.stages,
                                      image_seeds(codes, args.seed))
        assert torch.equal(plan.loss_mask, rollout.plan.loss_mask)  # each row keeps its own masks
        assert torch.equal(plan.contexts, rollout.plan.contexts)
        assert torch.equal(rollout.structure, trainer.partition(rollout.trajectory))
    torch.testing.assert_close(batch["ht_weights"].mean(-1), torch.ones(8), rtol=0, atol=1e-5)


def test_quickstart_style_script_trains(tiny_model_dir, tmp_path):
    # TRL's GRPO quickstart with the two names swapped and a reward over PIL images
    from datasets import load_dataset

    from trl_htgrpo import HTGRPOConfig, HTGRPOTrainer
    from trl_htgrpo.toy import prompts_path

    dataset = load_dataset("json", data_files=prompts_path("train"), split="train").select(range(16))
    training_args = HTGRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=8,
                                 num_generations=4, diffusion_steps=4, report_to="none", save_strategy="no",
                                 gradient_checkpointing=False, logging_steps=1)
    trainer = HTGRPOTrainer(model=tiny_model_dir, reward_funcs=redness, args=training_args, train_dataset=dataset)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert trainer.state.global_step == 2
    assert all(0.0 <= r <= 1.0 for r in _history(trainer, "rewards/redness/mean"))
    assert any(not torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())


def test_geneval_reward_logs_per_tag(tiny_model_dir, train_dataset, tmp_path):
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=GenEvalReward(), args=fast_args(tmp_path, max_steps=1),
                            train_dataset=train_dataset)
    trainer.train()
    keys = set().union(*trainer.state.log_history)
    assert any(k.startswith("rewards/geneval/") and k.split("/")[-1] in {"single_object", "two_object"} for k in keys)


def test_reward_with_wrong_count_or_exception_names_the_function(tiny_model_dir, train_dataset, tmp_path):
    def short_reward(completions, **kw):
        return [1.0] * (len(completions) - 1)

    def broken_reward(completions, **kw):
        raise KeyError("tag")

    for func, pattern in ((short_reward, "short_reward' returned 7 rewards"), (broken_reward, "'broken_reward' raised KeyError")):
        trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=func, args=fast_args(tmp_path, max_steps=1),
                                train_dataset=train_dataset)
        with pytest.raises((ValueError, RuntimeError), match=pattern):
            trainer.train()


def test_none_and_nan_rewards_are_handled_as_trl_does(tiny_model_dir, train_dataset, tmp_path):
    def partial(completions, **kw):
        return [None if i % 4 == 0 else (math.nan if i % 4 == 1 else float(i % 2)) for i in range(len(completions))]

    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=partial, args=fast_args(tmp_path, max_steps=1),
                            train_dataset=train_dataset)
    trainer.train()
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])


def test_unknown_backbone_lists_supported_ones(tmp_path, train_dataset):
    from transformers import BertConfig, BertForMaskedLM

    from trl_htgrpo.toy.tokenizer import build_tokenizer

    model = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=16))
    with pytest.raises(ValueError, match=r"model_type='bert'.*supported model types: \[.*'shapes_mdm'.*\]"):
        HTGRPOTrainer(model, reward_funcs=redness, args=fast_args(tmp_path), train_dataset=train_dataset,
                      processing_class=build_tokenizer())


def test_dataset_without_prompt_or_with_image_column_fails_before_compute(tiny_model_dir, tmp_path):
    from datasets import Dataset

    with pytest.raises(ValueError, match="needs a 'prompt' column"):
        HTGRPOTrainer(tiny_model_dir, redness, args=fast_args(tmp_path), train_dataset=Dataset.from_dict({"text": ["a"]}))
    with pytest.raises(ValueError, match="named 'image"):
        HTGRPOTrainer(tiny_model_dir, redness, args=fast_args(tmp_path),
                      train_dataset=Dataset.from_dict({"prompt": ["a"], "image": ["x"]}))


def test_lora_with_beta_uses_the_disabled_adapter_as_reference(tiny_model_dir, train_dataset, tmp_path):
    from peft import LoraConfig

    args = fast_args(tmp_path, max_steps=2, beta=0.1, learning_rate=5e-2)
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset,
                            peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["qkv", "proj"]))
    assert trainer.ref_model is None
    base = {k: v.clone() for k, v in trainer.model.state_dict().items() if "lora" not in k}
    lora = {k: v.clone() for k, v in trainer.model.state_dict().items() if "lora_B" in k}
    trainer.train()
    kl = _history(trainer, "kl")
    assert kl[0] == 0.0 and kl[1] > 0.0
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in base.items())  # base frozen
    assert any(not torch.equal(state[k], v) for k, v in lora.items())  # adapter trained


def test_gradient_checkpointing_trains(tiny_model_dir, train_dataset, tmp_path):
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, train_dataset=train_dataset,
                            args=fast_args(tmp_path, max_steps=1, activation_checkpointing=True))
    trainer.train()
    assert trainer.model.is_gradient_checkpointing and trainer.state.global_step == 1


def test_save_model_reloads_exact_logits_and_resume_continues(tiny_model_dir, train_dataset, tmp_path):
    from transformers import AutoModel

    args = fast_args(tmp_path / "run", max_steps=2, save_strategy="steps", save_steps=1)
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    reloaded = AutoModel.from_pretrained(str(tmp_path / "final")).eval()
    ids = torch.randint(0, 40, (2, 160))
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, trainer.model.eval()(input_ids=ids).logits)
    assert os.path.exists(tmp_path / "run" / "checkpoint-2" / "model.safetensors")

    args = fast_args(tmp_path / "run", max_steps=3, save_strategy="steps", save_steps=1)
    resumed = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert resumed.state.global_step == 3 and os.path.exists(tmp_path / "run" / "checkpoint-3")


def test_failing_reward_keeps_earlier_checkpoints(tiny_model_dir, train_dataset, tmp_path):
    calls = {"n": 0}

    def flaky(completions, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("reward server down")
        return [0.5] * len(completions)

    # K = 1: a rollout per step; steps 1 and 2 are saved, the third rollout's reward fails
    args = fast_args(tmp_path, max_steps=5, num_iterations=1, save_strategy="steps", save_steps=1)
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=flaky, args=args, train_dataset=train_dataset)
    with pytest.raises(RuntimeError, match="'flaky' raised RuntimeError: reward server down"):
        trainer.train()
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("checkpoint")) == ["checkpoint-1", "checkpoint-2"]
    from transformers import AutoModel

    AutoModel.from_pretrained(str(tmp_path / "checkpoint-2"))  # loadable


def test_push_to_hub_uploads_model_tokenizer_and_card(tiny_model_dir, train_dataset, tmp_path, monkeypatch):
    import transformers.trainer as hf_trainer

    uploads = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            return type("Url", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kw):
            uploads.append((repo_id, sorted(os.listdir(folder_path)), open(os.path.join(folder_path, "README.md")).read()))

    monkeypatch.setattr(hf_trainer, "hf_api", lambda *a, **k: FakeApi())
    args = fast_args(tmp_path, max_steps=1, hub_model_id="me/shapes-htgrpo")
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train()
    trainer.push_to_hub()
    (repo, files, card), = uploads
    assert repo == "me/shapes-htgrpo"
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(files)
    assert "HT-GRPO" in card and "2605.16842" in card and "| `stage_iterations` | `[1, 1, 1]` |" in card


def test_pass_counts_per_rollout_batch(tiny_model_dir, train_dataset, tmp_path):
    # beta > 0 and K = 3 misaligned with GA: old and reference log-probs, two contexts each
    args = fast_args(tmp_path, max_steps=3, beta=0.1, refine_context="sketch")
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train()
    c = trainer.passes.counts
    B = 8
    assert c["old_forwards"] == 2 * B and c["ref_forwards"] == 2 * B  # one rollout batch, 2 contexts each
    assert c["rollout_forwards"] == 4 * 2 * B  # T = 4 steps, conditional + unconditional rows
    assert c["policy_forwards"] == c["policy_backwards"] == 3 * B  # one context per inner iteration


@pytest.mark.parametrize(
    "estimator,extra,contexts,policy_per_iter",
    [("ht", {}, 1, 1), ("maskgrpo", {}, 3, 1), ("unigrpo", {}, 3, 1), ("d1", {}, 3, 1), ("trace", {}, 2, 2),
     ("unigrpo", {"unigrpo_num_copies": 2}, 6, 2)],
)
def test_every_estimator_trains_and_counts_its_passes(estimator, extra, contexts, policy_per_iter, tiny_model_dir,
                                                      train_dataset, tmp_path):
    # K = 3, beta > 0, T = 4: trace has ceil(4 / 2) = 2 blocks, all scored in each iteration
    args = fast_args(tmp_path, max_steps=3, beta=0.1, estimator=estimator, **extra)
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train()
    c, B = trainer.passes.counts, 8
    assert c["old_forwards"] == c["ref_forwards"] == contexts * B
    assert c["policy_backwards"] == 3 * policy_per_iter * B
    assert _history(trainer, "ht/max_abs_log_ratio")[0] == 0.0  # every estimator: ratio 1 before an update
    assert _history(trainer, "kl")[0] == 0.0


@pytest.mark.parametrize(
    "estimator,extra",
    [("ht", {}), ("unigrpo", {}), ("d1", {}), ("maskgrpo", {}), ("trace", {}), ("unigrpo", {"unigrpo_num_copies": 2}),
     ("maskgrpo", {"stage_iterations": [1, 1, 1]})],
)
def test_old_reference_and_current_passes_read_identical_masks(estimator, extra, tiny_model_dir, train_dataset, tmp_path,
                                                               monkeypatch):
    # every model pass is recorded per image (by its drawn tokens): image mask and the prompt the model saw
    import trl_htgrpo.diffusion.estimators.base as base

    args = fast_args(tmp_path, max_steps=3, beta=0.1, estimator=estimator, **extra)
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    calls, original, context_prompt, current = [], base.context_logps, trainer.estimator.context_prompt, [None]

    def prompt_of(backbone, prompt_ids, prompt_mask, seeds, context):
        current[0] = context
        return context_prompt(backbone, prompt_ids, prompt_mask, seeds, context)

    def recording(model, backbone, prompt_ids, prompt_mask, targets, masked, temperature=1.0, batch_size=None,
                  guidance_scale=0.0):
        phase = "policy" if torch.is_grad_enabled() else "old_or_ref"
        for b in range(targets.shape[0]):
            calls.append((phase, targets[b].numpy().tobytes(), current[0], masked[b].clone(),
                          prompt_ids[b][prompt_mask[b].bool()].tolist()))
        return original(model, backbone, prompt_ids, prompt_mask, targets, masked, temperature, batch_size, guidance_scale)

    monkeypatch.setattr(base, "context_logps", recording)
    monkeypatch.setattr(trainer.estimator, "context_prompt", prompt_of)
    trainer.train()
    scored = {(c[1], c[2]): c[3:] for c in calls if c[0] == "old_or_ref"}
    policy = [c for c in calls if c[0] == "policy"]
    assert len(scored) >= 8 and len(policy) >= 3 * 8
    for _, image, context, masked, prompt in policy:  # context c of this image: the same mask and (d1) prompt
        masked_old, prompt_old = scored[(image, context)]
        assert torch.equal(masked, masked_old) and prompt == prompt_old


def test_a_baseline_follows_a_stage_schedule_when_asked(tiny_model_dir, train_dataset, tmp_path):
    args = fast_args(tmp_path, max_steps=3, estimator="maskgrpo", stage_iterations=[1, 1, 1])
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train()
    assert _history(trainer, "ht/stage") == [0.0, 1.0, 2.0]
    frac = _history(trainer, "ht/loss_token_fraction")
    structure = _history(trainer, "ht/structure_fraction")[0]
    # iteration k masks r_k = 0.8, 0.9, 0.999 of the tokens; stages keep the structure, then the refinement part
    assert frac[0] == pytest.approx(0.8, abs=0.01)
    assert frac[1] == pytest.approx(0.9 * structure, abs=0.08) and frac[2] == pytest.approx(1 - structure, abs=0.02)


def test_pass_counts_per_update_tokens_and_no_evaluation_passes(tiny_model_dir, train_dataset, tmp_path, monkeypatch):
    args = fast_args(tmp_path, max_steps=3, beta=0.1, estimator="maskgrpo", eval_strategy="no",
                     per_device_eval_batch_size=8, generation_micro_batch_size=4)
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset,
                            eval_dataset=train_dataset.select(range(2)))
    fed, build = [0], trainer.backbone.build_inputs

    def recording(prompt_ids, prompt_mask, image_ids):  # every token any model pass reads
        ids, attn = build(prompt_ids, prompt_mask, image_ids)
        fed[0] += ids.numel()
        return ids, attn

    monkeypatch.setattr(trainer.backbone, "build_inputs", recording)
    trainer.train()
    c, B = dict(trainer.passes.counts), 8
    assert sum(c[f"{p}_tokens"] for p in ("rollout", "old", "ref", "policy")) == fed[0]  # padding and <|eoi|> included
    last = [h for h in trainer.state.log_history if "passes/policy_forwards_per_update" in h][-1]
    assert last["passes/policy_forwards_per_update"] == c["policy_forwards"] / 3 == B  # one context per update
    assert last["passes/policy_forwards_per_rollout"] == 3 * B
    trainer.evaluate()  # rollouts and losses of the eval set are not training passes
    assert trainer._rollouts == {"train": 1, "eval": 1}  # evaluation did draw a rollout batch
    assert dict(trainer.passes.counts) == c


def test_pass_counts_per_update_after_resuming(tiny_model_dir, train_dataset, tmp_path):
    args = fast_args(tmp_path, max_steps=3, save_strategy="steps", save_steps=3)
    HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset).train()
    args = fast_args(tmp_path, max_steps=6, save_strategy="no")
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    per_update = _history(trainer, "passes/policy_forwards_per_update")
    assert per_update and per_update[-1] == 8  # restored with the checkpoint: counts and updates since step 0


def test_resume_from_a_checkpoint_continues_bit_identically(tiny_model_dir, train_dataset, tmp_path):
    # K = 3 and GA = spg = 1: step 2 is inside a rollout batch, so the buffered batch and TRL's micro-step
    # counter must come back with the checkpoint; sampler seeds, token subsets and data order too
    from transformers import TrainerCallback

    class CrashAfter(TrainerCallback):  # the run dies after step 2 (its checkpoint is written)
        def on_step_end(self, args, state, control, **kw):
            control.should_training_stop = state.global_step == 2

    def run(out, resume=None, crash=False):
        args = fast_args(out, max_steps=4, save_strategy="steps", save_steps=2, learning_rate=5e-2)
        trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=args, train_dataset=train_dataset,
                                callbacks=[CrashAfter()] if crash else None)
        trainer.train(resume_from_checkpoint=resume)
        return {k: v.clone() for k, v in trainer.model.state_dict().items()}

    straight = run(tmp_path / "a")
    run(tmp_path / "b", crash=True)
    resumed = run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-2"))
    for k, v in straight.items():
        assert torch.equal(v, resumed[k]), f"{k} differs after resuming"
    again = run(tmp_path / "c")  # and two uninterrupted runs agree, of course
    assert all(torch.equal(v, again[k]) for k, v in straight.items())


def test_sync_ref_model_with_beta_trains_and_syncs(tmp_path, train_dataset):
    model, tok = make_tiny_model(seed=1)
    args = fast_args(tmp_path, max_steps=2, beta=0.1, sync_ref_model=True, ref_model_sync_steps=1,
                     ref_model_mixup_alpha=1.0, learning_rate=5e-2)
    trainer = HTGRPOTrainer(model, reward_funcs=redness, args=args, train_dataset=train_dataset, processing_class=tok)
    trainer.train()
    policy, ref = trainer.model.state_dict(), trainer.ref_model.state_dict()
    assert all(torch.equal(policy[k], ref[k]) for k in policy)  # alpha = 1: the reference is the policy after a sync
    assert _history(trainer, "kl")[0] == 0.0


def test_reward_returning_the_wrong_type_names_the_function_and_the_value(tiny_model_dir, train_dataset, tmp_path):
    def words(completions, **kw):
        return ["good"] * len(completions)

    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=words, args=fast_args(tmp_path, max_steps=1),
                            train_dataset=train_dataset)
    with pytest.raises(TypeError, match=r"reward function 'words' returned str 'good' at position 0"):
        trainer.train()


def test_async_rewards_run_and_are_named(tiny_model_dir, train_dataset, tmp_path):
    import asyncio

    async def slow_redness(completions, **kw):
        await asyncio.sleep(0.01)
        return redness(completions)

    async def broken(completions, **kw):
        raise ConnectionError("server down")

    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=[slow_redness, redness], args=fast_args(tmp_path, max_steps=1),
                            train_dataset=train_dataset)
    trainer.train()
    assert _history(trainer, "rewards/slow_redness/mean") == _history(trainer, "rewards/redness/mean")
    trainer = HTGRPOTrainer(tiny_model_dir, reward_funcs=broken, args=fast_args(tmp_path, max_steps=1),
                            train_dataset=train_dataset)
    with pytest.raises(RuntimeError, match="'broken' raised ConnectionError: server down"):
        trainer.train()


@pytest.mark.parametrize("arg", ["tools", "rollout_func", "environment_factory"])
def test_trl_features_that_cannot_apply_are_refused(tiny_model_dir, train_dataset, tmp_path, arg):
    with pytest.raises(ValueError, match=f"{arg} is not supported by HTGRPOTrainer"):
        HTGRPOTrainer(tiny_model_dir, reward_funcs=redness, args=fast_args(tmp_path), train_dataset=train_dataset,
                      **{arg: [print] if arg == "tools" else print})
