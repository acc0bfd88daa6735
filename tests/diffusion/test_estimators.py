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
    with pytest.raises(ValueError, match=r"unknown estimator 'magic'; valid estimators: \['ht'"):
        get_estimator("magic")
