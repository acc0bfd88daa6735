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
    base = dict(unigrpo_mask_range=[0.1, 0.9], d1_prompt_mask_prob=0.15, maskgrpo_min_mask_rate=0.7, trace_block_size=2)
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
