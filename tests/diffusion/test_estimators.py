"""Estimator plans (contexts, which tokens carry loss in which iteration and context, seeding) and scoring."""

from types import SimpleNamespace

import pytest
import torch

from trl_htgrpo.diffusion.estimators import (
    ESTIMATORS, D1Estimator, EstimatorPlan, HTEstimator, MaskGRPOEstimator, TraceEstimator, UniGRPOEstimator,
    get_estimator, image_seeds, prompt_token_mask,
)
from trl_htgrpo.diffusion.sampler import Trajectory
from trl_htgrpo.hierarchy import stage_candidates

GLOBAL3 = ["global"] * 3
STAGED = ["global", "structure", "refine"]


def _args(**kw):
    base = dict(stage_iterations=[1, 1, 1], token_sample_ratio=0.5, refine_context="sketch",
                unigrpo_mask_range=[0.1, 0.9], unigrpo_num_copies=1, d1_prompt_mask_prob=0.15,
                maskgrpo_min_mask_rate=0.7, trace_block_size=2)
    base.update(kw)
    return SimpleNamespace(**base)


def _traj(codes, reveal=None):
    B, N = codes.shape
    reveal = torch.zeros(B, N, dtype=torch.long) if reveal is None else reveal
    T = int(reveal.max()) + 1
    return Trajectory(codes, reveal, torch.ones(B, N), torch.zeros(B, N), torch.ones(B, T))


def _plan(est, codes, structure=None, stages=GLOBAL3, seed=0, reveal=None):
    structure = torch.zeros(codes.shape, dtype=torch.bool) if structure is None else structure
    return est.plan(_traj(codes, reveal), structure, stage_candidates(stages, structure), stages, image_seeds(codes, seed))


def test_ht_plan_contexts_and_stage_tokens():
    structure = torch.tensor([[True, True, False, False, False, False], [True, False, False, False, False, True]])
    codes = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    plan = _plan(HTEstimator(_args()), codes, structure, STAGED)
    B, C, N = plan.contexts.shape
    assert (B, C, N) == (2, 2, 6) and plan.loss_mask.shape == (2, 3, 2, 6)
    assert plan.contexts[:, 0].all()  # fully masked
    assert torch.equal(plan.contexts[:, 1], ~structure)  # sketch: structure revealed, refinement masked
    lm = plan.loss_mask  # (B, K, C, N)
    # global: ctx 0, ceil(0.5*6) = 3 tokens; structure: ctx 0, ceil(0.5*2) = 1 structure token;
    # refine: ctx 1, ceil(0.5*4) = 2 refinement tokens
    assert lm[:, 0, 0].sum(-1).tolist() == [3, 3] and not lm[:, 0, 1].any()
    assert lm[:, 1, 0].sum(-1).tolist() == [1, 1] and not (lm[:, 1, 0] & ~structure).any() and not lm[:, 1, 1].any()
    assert lm[:, 2, 1].sum(-1).tolist() == [2, 2] and not (lm[:, 2, 1] & structure).any() and not lm[:, 2, 0].any()


def test_ht_plan_masked_refine_context_uses_one_context():
    structure = torch.tensor([[True, False, False, False]])
    plan = _plan(HTEstimator(_args(refine_context="masked")), torch.tensor([[1, 2, 3, 4]]), structure, STAGED)
    assert plan.contexts.shape[1] == 1 and plan.loss_mask[:, 2, 0].sum() == 2  # ceil(0.5 * 3)


def test_ht_plan_depends_on_the_image_not_the_batch_order():
    structure = torch.tensor([[True, True, False, False, False, False], [True, False, False, False, False, True]])
    codes = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    a = _plan(HTEstimator(_args()), codes, structure, STAGED)
    b = _plan(HTEstimator(_args()), codes.flip(0), structure.flip(0), STAGED)
    assert torch.equal(a.loss_mask, b.loss_mask.flip(0))
    c = _plan(HTEstimator(_args()), codes, structure, STAGED, seed=1)  # another run seed draws other subsets
    assert not torch.equal(a.loss_mask, c.loss_mask)


def test_plan_rejects_loss_on_visible_tokens_and_bad_shapes():
    contexts = torch.tensor([[[True, False]]])
    with pytest.raises(ValueError, match="visible"):
        EstimatorPlan(contexts, torch.tensor([[[[True, True]]]]))
    with pytest.raises(ValueError, match="does not match"):
        EstimatorPlan(contexts, torch.zeros(1, 1, 2, 2, dtype=torch.bool))


def test_unknown_estimator_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown estimator 'magic'; valid estimators: \['d1', 'ht', 'maskgrpo', 'trace', 'unigrpo'\]"):
        get_estimator("magic")
    assert get_estimator("ht") is HTEstimator and ESTIMATORS["trace"] is TraceEstimator


def test_maskgrpo_remask_ratios_follow_the_schedule():
    codes = torch.arange(2 * 100).view(2, 100) % 13
    plan = _plan(MaskGRPOEstimator(_args(maskgrpo_min_mask_rate=0.6)), codes, stages=["global"] * 4)
    # r_k = min(0.6 + 0.4 (k+1)/4, 0.999) = 0.7, 0.8, 0.9, 0.999 -> 70, 80, 90, 100 of 100 tokens
    assert plan.contexts.sum(-1).tolist() == [[70, 80, 90, 100]] * 2
    for k in range(4):  # iteration k reads context k only, loss exactly on its masked tokens
        assert torch.equal(plan.loss_mask[:, k, k], plan.contexts[:, k])
        assert plan.loss_mask[:, k].sum() == plan.loss_mask[:, k, k].sum()


def test_unigrpo_mask_ratios_lie_in_range_and_change_per_iteration():
    codes = torch.randint(0, 13, (16, 400), generator=torch.Generator().manual_seed(0))
    plan = _plan(UniGRPOEstimator(_args(unigrpo_mask_range=[0.3, 0.5])), codes)
    frac = plan.contexts.float().mean(-1)  # (B, K): ~t with t in [0.3, 0.5]; 400 tokens -> sd <= 0.025
    assert frac.min() > 0.3 - 0.1 and frac.max() < 0.5 + 0.1
    assert frac.std() > 0.01  # t differs between images and iterations
    assert not torch.equal(plan.contexts[:, 0], plan.contexts[:, 1])
    for k in range(3):
        assert torch.equal(plan.loss_mask[:, k, k], plan.contexts[:, k])


def test_unigrpo_copies_are_independent_masks_of_one_iteration():
    codes = torch.randint(0, 13, (4, 400), generator=torch.Generator().manual_seed(0))
    one = _plan(UniGRPOEstimator(_args()), codes)
    two = _plan(UniGRPOEstimator(_args(unigrpo_num_copies=2)), codes)
    assert two.contexts.shape == (4, 6, 400) and two.loss_mask.shape == (4, 3, 6, 400)
    assert torch.equal(two.contexts[:, 0::2], one.contexts)  # copy 0 of each iteration: the single-copy masks
    assert not torch.equal(two.contexts[:, 0::2], two.contexts[:, 1::2])  # copy 1 draws its own
    for k in range(3):  # iteration k reads contexts 2k and 2k + 1 on their masked tokens, no other
        assert torch.equal(two.loss_mask[:, k, 2 * k], two.contexts[:, 2 * k])
        assert torch.equal(two.loss_mask[:, k, 2 * k + 1], two.contexts[:, 2 * k + 1])
        assert two.loss_mask[:, k].sum() == two.contexts[:, 2 * k : 2 * k + 2].sum()


def test_baseline_under_a_stage_schedule_keeps_contexts_and_restricts_loss():
    codes = torch.arange(2 * 50).view(2, 50) % 13
    structure = torch.zeros(2, 50, dtype=torch.bool)
    structure[:, :20] = True
    plain = _plan(MaskGRPOEstimator(_args()), codes, structure, GLOBAL3)
    staged = _plan(MaskGRPOEstimator(_args()), codes, structure, STAGED)
    assert torch.equal(staged.contexts, plain.contexts)  # old / reference log-probs unchanged
    assert torch.equal(staged.loss_mask[:, 0], plain.loss_mask[:, 0])  # global: every masked token
    s, r = staged.loss_mask[:, 1, 1], staged.loss_mask[:, 2, 2]
    assert torch.equal(s, plain.loss_mask[:, 1, 1] & structure) and s.any()
    assert torch.equal(r, plain.loss_mask[:, 2, 2] & ~structure) and r.any()


def test_d1_masks_whole_image_and_prompt_tokens_per_context():
    codes = torch.zeros(2, 6, dtype=torch.long)
    plan = _plan(D1Estimator(_args()), codes, stages=["global"] * 2)
    assert plan.contexts.all() and plan.contexts.shape[1] == 2
    assert plan.loss_mask[:, 0, 0].all() and plan.loss_mask[:, 1, 1].all() and not plan.loss_mask[:, 0, 1].any()
    pm = torch.tensor([[0] * 100 + [1] * 900, [1] * 1000])  # (B, P), first row left padded
    a, b = prompt_token_mask(pm, 0.15, [1, 2], 0), prompt_token_mask(pm, 0.15, [1, 2], 1)
    assert not a[0, :100].any()  # padding is never masked
    assert abs(a[1].float().mean().item() - 0.15) < 0.04  # 1000 draws at p = 0.15: sd 0.011
    assert torch.equal(a, prompt_token_mask(pm, 0.15, [1, 2], 0)) and not torch.equal(a, b)  # seeded per context


def test_d1_prompt_mask_does_not_depend_on_padding():
    real = torch.ones(1, 40, dtype=torch.long)
    padded = torch.cat([torch.zeros(1, 25, dtype=torch.long), real], 1)
    a, b = prompt_token_mask(real, 0.3, [5], 2), prompt_token_mask(padded, 0.3, [5], 2)
    assert torch.equal(a, b[:, 25:]) and not b[:, :25].any() and a.any()


def test_trace_contexts_equal_the_recorded_trajectory():
    reveal = torch.tensor([[0, 1, 2, 3, 4, 5, 5, 2]])  # T = 6, blocks of 2 steps: 0,0,1,1,2,2,2,1
    plan = _plan(TraceEstimator(_args(trace_block_size=2)), torch.zeros(1, 8, dtype=torch.long), stages=["global"] * 2,
                 reveal=reveal)
    # context b = the rollout's state before block b: masked iff revealed in block b or later
    assert plan.contexts[0].int().tolist() == [[1] * 8, [0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 0]]
    block_of = plan.loss_mask[0].int().argmax(1)  # (K, N): the context each token's loss reads
    assert block_of.tolist() == [[0, 0, 1, 1, 2, 2, 2, 1]] * 2 and plan.loss_mask[0].sum(1).eq(1).all()


def test_trace_contexts_equal_the_states_the_sampler_went_through(tok):
    """Context b must be the image exactly as the sampler saw it when block b began."""
    from trl_htgrpo.diffusion.sampler import sample_images
    from trl_htgrpo.toy import ShapesBackbone, ShapesDiffusionConfig, ShapesDiffusionModel

    torch.manual_seed(0)
    model = ShapesDiffusionModel(ShapesDiffusionConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64)).eval()
    bb, seen = ShapesBackbone(tok), []
    prompts = bb.encode_prompts(["a photo of a red square", "a photo of two crosses"])
    forward = bb.image_logits

    def recording(m, ids, attn):  # the image part of the conditional rows, at every step
        P = ids.shape[1] - bb.num_image_tokens - 1
        seen.append(ids[: len(prompts), P : P + bb.num_image_tokens] == bb.mask_token_id)
        return forward(m, ids, attn)

    bb.image_logits = recording
    traj = sample_images(model, bb, prompts, steps=6, guidance_scale=2.0, seeds=[0, 1])
    stages = ["global"] * 2
    plan = TraceEstimator(_args(trace_block_size=2)).plan(traj, None, stage_candidates(stages, torch.zeros_like(traj.codes).bool()),
                                                          stages, [0, 1])
    assert len(seen) == 6 and plan.contexts.shape[1] == 3
    for b in range(3):  # block b = steps 2b, 2b + 1
        assert torch.equal(plan.contexts[:, b], seen[2 * b])
        later = seen[2 * b + 2] if b < 2 else torch.zeros_like(seen[0])
        assert torch.equal(plan.loss_mask[:, 0, b], seen[2 * b] & ~later)


class _Backbone:
    """Images of N = 3 codes after a prompt; logits depend on which prompt tokens and image positions are masked."""

    mask_token_id, num_image_tokens = 99, 3

    def codes_to_ids(self, c):
        return c + 10

    def build_inputs(self, p, pm, img):
        return torch.cat([p, img], 1), torch.cat([pm, torch.ones_like(img)], 1)

    def image_logits(self, model, ids, attn):
        return model(ids)[:, -3:, :4]


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, ids):  # (b, L) -> (b, L, 4): logit j = j * (number of masked tokens in the row) / 10
        self.calls.append(ids.clone())
        n = (ids == 99).sum(-1).float()  # (b,)
        return torch.arange(4).float()[None, None, :] * n[:, None, None] / 10 * torch.ones(ids.shape[0], ids.shape[1], 1)


def test_score_computes_only_the_needed_contexts_with_each_estimators_prompt():
    """Two rows, two contexts; row 0 needs context 1 only, row 1 context 0 only: two forwards of one row each."""
    model, bb = _Model(), _Backbone()
    prompt, pmask = torch.tensor([[5, 6], [7, 8]]), torch.ones(2, 2, dtype=torch.long)
    targets = torch.tensor([[0, 1, 2], [3, 3, 3]])
    contexts = torch.tensor([[[1, 1, 1], [0, 1, 1]], [[1, 1, 1], [0, 0, 1]]]).bool()  # (B, C, N)
    need = torch.zeros(2, 2, 3, dtype=torch.bool)
    need[0, 1, 2] = need[1, 0, 0] = True
    logps, ents = D1Estimator(_args(d1_prompt_mask_prob=0.0)).score(model, bb, prompt, pmask, targets, contexts, need, [1, 2])
    assert len(model.calls) == 2 and [c.shape[0] for c in model.calls] == [1, 1]
    # row 1, context 0: 3 masked -> logits [0, .3, .6, .9]; log softmax of target 3 at each masked position
    lse = torch.logsumexp(torch.tensor([0.0, 0.3, 0.6, 0.9]), 0)
    torch.testing.assert_close(logps[1, 0], (0.9 - lse).repeat(3))
    # row 0, context 1: 2 masked -> logits [0, .2, .4, .6]; visible position 0 scores 0
    lse2 = torch.logsumexp(torch.tensor([0.0, 0.2, 0.4, 0.6]), 0)
    torch.testing.assert_close(logps[0, 1], torch.stack([torch.tensor(0.0), 0.2 - lse2, 0.4 - lse2]))
    assert logps[0, 0].eq(0).all() and logps[1, 1].eq(0).all() and ents[0, 0].eq(0).all()
    # d1 with p = 1 masks every prompt token of the rows it scores
    model.calls.clear()
    D1Estimator(_args(d1_prompt_mask_prob=0.999)).score(model, bb, prompt, pmask, targets, contexts, need, [1, 2])
    assert all((c[:, :2] == 99).all() for c in model.calls)


def test_guided_scoring_reads_the_rollouts_cfg_distribution(tok):
    """With guidance w, the scored distribution is softmax((1 + w) l_cond - w l_uncond), the one the sampler drew
    from: l_uncond from the backbone's unconditional prompt with the same image context."""
    from trl_htgrpo.diffusion.sampler import left_pad
    from trl_htgrpo.diffusion.scoring import context_logps
    from trl_htgrpo.toy import ShapesBackbone, ShapesDiffusionConfig, ShapesDiffusionModel

    torch.manual_seed(0)
    model = ShapesDiffusionModel(ShapesDiffusionConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64)).eval()
    with torch.no_grad():  # sharper than the std-0.02 init, so that the prompt matters
        model.lm_head.weight.normal_(std=1.0)
    bb = ShapesBackbone(tok)
    p_ids, p_mask = left_pad(bb.encode_prompts(["a photo of a red square", "a photo of two crosses"]), bb.pad_token_id)
    targets = torch.randint(0, 13, (2, 144), generator=torch.Generator().manual_seed(1))
    masked = torch.rand(2, 144, generator=torch.Generator().manual_seed(2)) < 0.5
    w = 2.0
    with torch.no_grad():
        lp, _ = context_logps(model, bb, p_ids, p_mask, targets, masked, guidance_scale=w)
        image = torch.where(masked, bb.mask_token_id, bb.codes_to_ids(targets))
        cond = bb.image_logits(model, *bb.build_inputs(p_ids, p_mask, image))
        u_ids, u_mask = left_pad([bb.unconditional_prompt()] * 2, bb.pad_token_id)
        uncond = bb.image_logits(model, *bb.build_inputs(u_ids, u_mask, image))
        expected = torch.log_softmax((1 + w) * cond - w * uncond, -1).gather(-1, targets[..., None]).squeeze(-1) * masked
        plain, _ = context_logps(model, bb, p_ids, p_mask, targets, masked)
    torch.testing.assert_close(lp, expected, rtol=1e-5, atol=1e-5)
    assert (lp - plain).abs().max() > 1e-2  # guidance changes what is scored
