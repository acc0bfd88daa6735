"""Estimator plans: contexts, which tokens carry loss in which iteration, seeding."""

from types import SimpleNamespace

import pytest
import torch

from trl_htgrpo.diffusion.estimators import EstimatorPlan, HTEstimator, get_estimator, sample_seeds


def _ht(**kw):
    args = dict(stage_iterations=[1, 1, 1], token_sample_ratio=0.5, refine_context="sketch")
    args.update(kw)
    return HTEstimator(SimpleNamespace(**args))


def test_ht_plan_contexts_and_stage_tokens():
    structure = torch.tensor([[True, True, False, False, False, False], [True, False, False, False, False, True]])
    codes = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    plan = _ht().plan(codes, structure, sample_seeds(codes, 0), 3)
    B, C, N = plan.contexts.shape
    assert (B, C, N) == (2, 2, 6)
    assert plan.contexts[:, 0].all()  # fully masked
    assert torch.equal(plan.contexts[:, 1], ~structure)  # sketch: structure revealed, refinement masked
    tc = plan.token_context  # (B, K, N)
    # global: ctx 0, ceil(0.5*6) = 3 tokens; structure: ctx 0, ceil(0.5*2) = 1 structure token;
    # refine: ctx 1, ceil(0.5*4) = 2 refinement tokens
    assert ((tc[:, 0] >= 0).sum(-1).tolist(), set(tc[:, 0][tc[:, 0] >= 0].tolist())) == ([3, 3], {0})
    assert (tc[:, 1] >= 0).sum(-1).tolist() == [1, 1] and not ((tc[:, 1] >= 0) & ~structure).any()
    assert (tc[:, 2] >= 0).sum(-1).tolist() == [2, 2] and not ((tc[:, 2] >= 0) & structure).any()
    assert set(tc[:, 2][tc[:, 2] >= 0].tolist()) == {1}


def test_ht_plan_masked_refine_context_uses_one_context():
    structure = torch.tensor([[True, False, False, False]])
    codes = torch.tensor([[1, 2, 3, 4]])
    plan = _ht(refine_context="masked").plan(codes, structure, sample_seeds(codes, 0), 3)
    assert plan.contexts.shape[1] == 1 and plan.token_context.max().item() == 0


def test_ht_plan_depends_on_the_image_not_the_batch_order():
    structure = torch.tensor([[True, True, False, False, False, False], [True, False, False, False, False, True]])
    codes = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    a = _ht().plan(codes, structure, sample_seeds(codes, 0), 3)
    b = _ht().plan(codes.flip(0), structure.flip(0), sample_seeds(codes.flip(0), 0), 3)
    assert torch.equal(a.token_context, b.token_context.flip(0))
    c = _ht().plan(codes, structure, sample_seeds(codes, 1), 3)  # another run seed draws other subsets
    assert not torch.equal(a.token_context, c.token_context)


def test_plan_rejects_loss_on_visible_tokens():
    contexts = torch.tensor([[[True, False]]])
    with pytest.raises(ValueError, match="visible"):
        EstimatorPlan(contexts, torch.tensor([[[0, 0]]]))


def test_unknown_estimator_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown estimator 'magic'; valid estimators: \['d1', 'ht', 'maskgrpo', 'trace', 'unigrpo'\]"):
        get_estimator("magic")


def _args(**kw):
    base = dict(unigrpo_mask_range=[0.1, 0.9], unigrpo_num_copies=1, d1_prompt_mask_prob=0.15, maskgrpo_min_mask_rate=0.7, trace_block_size=2)
    base.update(kw)
    return SimpleNamespace(**base)


def test_maskgrpo_remask_ratios_follow_the_schedule():
    from trl_htgrpo.diffusion.estimators import MaskGRPOEstimator

    codes = torch.arange(2 * 100).view(2, 100) % 13
    plan = MaskGRPOEstimator(_args(maskgrpo_min_mask_rate=0.6)).plan(codes, None, sample_seeds(codes, 0), 4)
    # r_k = min(0.6 + 0.4 (k+1)/4, 0.999) = 0.7, 0.8, 0.9, 0.999 -> 70, 80, 90, 100 of 100 tokens
    assert plan.contexts.sum(-1).tolist() == [[70, 80, 90, 100]] * 2
    for k in range(4):  # iteration k reads context k, loss exactly on its masked tokens
        assert torch.equal(plan.token_context[:, k] == k, plan.contexts[:, k])


def test_unigrpo_mask_ratios_lie_in_range_and_change_per_iteration():
    from trl_htgrpo.diffusion.estimators import UniGRPOEstimator

    codes = torch.randint(0, 13, (16, 400), generator=torch.Generator().manual_seed(0))
    plan = UniGRPOEstimator(_args(unigrpo_mask_range=[0.3, 0.5])).plan(codes, None, sample_seeds(codes, 0), 3)
    frac = plan.contexts.float().mean(-1)  # (B, K): ~t with t in [0.3, 0.5]; 400 tokens -> sd <= 0.025
    assert frac.min() > 0.3 - 0.1 and frac.max() < 0.5 + 0.1
    assert frac.std() > 0.01  # t differs between images and iterations
    assert not torch.equal(plan.contexts[:, 0], plan.contexts[:, 1])
    for k in range(3):  # iteration k reads context k, loss exactly on the tokens it masks
        assert torch.equal(plan.token_context[:, k] == k, plan.contexts[:, k])
    assert plan.copies == 1 and plan.token_context.shape[1] == 3


def test_unigrpo_copies_are_independent_masks_averaged_per_iteration():
    from trl_htgrpo.diffusion.estimators import UniGRPOEstimator

    codes = torch.randint(0, 13, (4, 400), generator=torch.Generator().manual_seed(0))
    seeds = sample_seeds(codes, 0)
    one = UniGRPOEstimator(_args()).plan(codes, None, seeds, 3)
    two = UniGRPOEstimator(_args(unigrpo_num_copies=2)).plan(codes, None, seeds, 3)
    assert two.copies == 2 and two.contexts.shape == (4, 6, 400) and two.token_context.shape == (4, 6, 400)
    assert torch.equal(two.contexts[:, 0::2], one.contexts)  # copy 0 of each iteration: the single-copy masks
    assert not torch.equal(two.contexts[:, 0::2], two.contexts[:, 1::2])  # copy 1 draws its own
    for r in range(6):  # loss row r = (iteration r // 2, copy r % 2) reads context r on its masked tokens
        assert torch.equal(two.token_context[:, r] == r, two.contexts[:, r])


def test_baseline_under_a_stage_schedule_keeps_contexts_and_restricts_loss():
    from trl_htgrpo.diffusion.estimators import MaskGRPOEstimator, restrict_to_stages

    codes = torch.arange(2 * 50).view(2, 50) % 13
    structure = torch.zeros(2, 50, dtype=torch.bool)
    structure[:, :20] = True
    plan = MaskGRPOEstimator(_args()).plan(codes, structure, sample_seeds(codes, 0), 3)
    staged = restrict_to_stages(plan, ["global", "structure", "refine"], structure)
    assert torch.equal(staged.contexts, plan.contexts)  # old / reference log-probs unchanged
    assert torch.equal(staged.token_context[:, 0], plan.token_context[:, 0])  # global: every masked token
    s, r = staged.token_context[:, 1] >= 0, staged.token_context[:, 2] >= 0
    assert torch.equal(s, (plan.token_context[:, 1] >= 0) & structure) and s.any()
    assert torch.equal(r, (plan.token_context[:, 2] >= 0) & ~structure) and r.any()


def test_d1_masks_whole_image_and_prompt_tokens_per_context():
    from trl_htgrpo.diffusion.estimators import D1Estimator, prompt_mask

    codes = torch.zeros(2, 6, dtype=torch.long)
    plan = D1Estimator(_args()).plan(codes, None, [1, 2], 2)
    assert plan.contexts.all() and plan.prompt_mask_prob == 0.15
    assert plan.token_context[:, 0].eq(0).all() and plan.token_context[:, 1].eq(1).all()
    pm = torch.tensor([[0] * 100 + [1] * 900, [1] * 1000])  # (B, P), first row left padded
    a, b = prompt_mask(pm, 0.15, [1, 2], 0), prompt_mask(pm, 0.15, [1, 2], 1)
    assert not a[0, :100].any()  # padding is never masked
    assert abs(a[1].float().mean().item() - 0.15) < 0.04  # 1000 draws at p = 0.15: sd 0.011
    assert torch.equal(a, prompt_mask(pm, 0.15, [1, 2], 0)) and not torch.equal(a, b)  # seeded per context


def test_trace_contexts_equal_the_recorded_trajectory():
    from trl_htgrpo.diffusion.estimators import TraceEstimator

    reveal = torch.tensor([[0, 1, 2, 3, 4, 5, 5, 2]])  # T = 6, blocks of 2 steps: 0,0,1,1,2,2,2,1
    plan = TraceEstimator(_args(trace_block_size=2)).plan(torch.zeros(1, 8, dtype=torch.long), None, [0], 2, reveal)
    # context b = the rollout's state before block b: masked iff revealed in block b or later
    assert plan.contexts[0].int().tolist() == [[1] * 8, [0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 0]]
    assert plan.token_context[0, 0].tolist() == [0, 0, 1, 1, 2, 2, 2, 1] == plan.token_context[0, 1].tolist()


def test_trace_contexts_equal_the_states_the_sampler_went_through(tok):
    """Context b must be the image exactly as the sampler saw it when block b began."""
    from trl_htgrpo.toy import ShapesBackbone
    from trl_htgrpo.diffusion.estimators import TraceEstimator
    from trl_htgrpo.diffusion.sampler import sample_images
    from trl_htgrpo.toy import ShapesDiffusionConfig, ShapesDiffusionModel

    torch.manual_seed(0)
    model = ShapesDiffusionModel(ShapesDiffusionConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64)).eval()
    bb, seen = ShapesBackbone(tok), []
    prompts = bb.encode_prompts(["a photo of a red square", "a photo of two crosses"])
    forward = bb.forward_logits

    def recording(m, ids, attn):  # the image part of the conditional rows, at every step
        P = ids.shape[1] - bb.num_image_tokens - 1
        seen.append(ids[: len(prompts), P : P + bb.num_image_tokens] == bb.mask_token_id)
        return forward(m, ids, attn)

    bb.forward_logits = recording
    traj = sample_images(model, bb, prompts, steps=6, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    plan = TraceEstimator(_args(trace_block_size=2)).plan(traj.codes, None, [0, 1], 2, traj.reveal_step)
    assert len(seen) == 6 and plan.contexts.shape[1] == 3
    for b in range(3):  # block b = steps 2b, 2b + 1
        assert torch.equal(plan.contexts[:, b], seen[2 * b])
        assert torch.equal(plan.token_context[:, 0] == b, seen[2 * b] & ~(seen[2 * b + 2] if b < 2 else torch.zeros_like(seen[0])))
