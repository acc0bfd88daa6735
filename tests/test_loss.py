"""The loss HTGRPOTrainer computes, pinned on a hand-sized case: values and gradients worked out by hand.

Two images (B = 2) of N = 4 tokens, two contexts (C = 2: fully masked, and the sketch that masks the refinement
tokens), K = 3 inner iterations (global, structure, refinement). The policy's log-probs are a leaf tensor
``theta = old + delta`` (B, C, N) returned by a stand-in for ``Estimator.score``, so the test reads the loss and
``d loss / d theta`` that TRL's ``_compute_loss`` produces from the inputs our glue hands it.

    structure   img0 [T, T, F, F]          img1 [T, F, F, F]
    weights     img0 [4/3, 4/3, 2/3, 2/3]  img1 [1.6, .8, .8, .8]   (two-level, w_struct = 2, mean 1)
    advantages  A = [1.0, -0.5]
    delta       img0 ctx0 [.1, .3, 0, .2]  ctx1 [0, 0, .05, -.1]
                img1 ctx0 [.2, -.1, 0, .3] ctx1 [0, .1, -.2, 0]
    loss tokens k=0 (global, ctx 0): img0 {0, 2}, img1 {1, 3}
                k=1 (structure, ctx 0): img0 {1}, img1 {0}
                k=2 (refine, ctx 1): img0 {3}, img1 {2, 3}

Per token, with r = exp(delta) and A w the per-token advantage, TRL's clipped surrogate is
``l = -min(r A w, clip(r, 0.8, 1.2) A w)``; its gradient is ``-A w r`` unless the clip is active, then 0.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny_shapes import fast_args

from trl_htgrpo import HTGRPOTrainer
from trl_htgrpo.diffusion.estimators import EstimatorPlan
from trl_htgrpo.diffusion.sampler import Trajectory
from trl_htgrpo.rollout import RolloutBatch

B, C, N, K = 2, 2, 4, 3
STRUCTURE = torch.tensor([[True, True, False, False], [True, False, False, False]])
WEIGHTS = torch.tensor([[4 / 3, 4 / 3, 2 / 3, 2 / 3], [1.6, 0.8, 0.8, 0.8]])
ADV = torch.tensor([1.0, -0.5])
DELTA = torch.tensor([[[0.1, 0.3, 0.0, 0.2], [0.0, 0.0, 0.05, -0.1]], [[0.2, -0.1, 0.0, 0.3], [0.0, 0.1, -0.2, 0.0]]])
OLD = torch.tensor([[[-1.0, -2.0, -0.5, -1.5], [0.0, 0.0, -0.3, -0.7]], [[-0.2, -1.2, -2.2, -0.8], [0.0, -0.4, -0.9, -1.1]]])
REF = OLD.clone()
REF[0, 0, 1] -= 0.2  # ref - theta = -0.2 - 0.3 = -0.5
REF[1, 0, 0] += 0.1  # ref - theta = 0.1 - 0.2 = -0.1
LOSS_TOKENS = {0: [(0, 0, 0), (0, 0, 2), (1, 0, 1), (1, 0, 3)], 1: [(0, 0, 1), (1, 0, 0)], 2: [(0, 1, 3), (1, 1, 2), (1, 1, 3)]}


def rollout(weights=WEIGHTS, loss_tokens_k2=3.0):
    loss_mask = torch.zeros(B, K, C, N, dtype=torch.bool)
    for k, cells in LOSS_TOKENS.items():
        for b, c, i in cells:
            loss_mask[b, k, c, i] = True
    contexts = torch.stack([torch.ones(B, N, dtype=torch.bool), ~STRUCTURE], 1)
    traj = Trajectory(torch.zeros(B, N, dtype=torch.long), torch.zeros(B, N, dtype=torch.long), torch.ones(B, N),
                      torch.zeros(B, N), torch.ones(B, 2))
    counts = torch.tensor([[4.0, 2.0, loss_tokens_k2]] * B)
    return RolloutBatch(traj, STRUCTURE, weights, EstimatorPlan(contexts, loss_mask), torch.tensor([1, 2]), counts)


@pytest.fixture
def trainer(tiny_model_dir, train_dataset, tmp_path):
    t = HTGRPOTrainer(tiny_model_dir, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                      args=fast_args(tmp_path, refine_context="sketch", per_device_train_batch_size=4), train_dataset=train_dataset)
    assert t.max_completion_length == t.backbone.num_image_tokens == 144  # dr_grpo's |o|: the image's N tokens
    t.max_completion_length = N  # ... which is 4 in the hand-made batch
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    return t


def loss_and_grad(trainer, k, loss_type="grpo", beta=0.0, weights=WEIGHTS, loss_tokens_k2=3.0, swap=False):
    """TRL's loss of iteration k on the hand-made batch, and d loss / d theta (B, C, N)."""
    theta = (OLD + DELTA).clone().requires_grad_(True)
    seen = {}

    def score(model, backbone, prompt_ids, prompt_mask, targets, contexts, need, seeds, temperature=1.0, batch_size=None,
              guidance_scale=0.0):
        seen["need"] = need.clone()
        return theta, torch.zeros_like(theta)

    trainer.estimator.score = score
    trainer.loss_type, trainer.beta, trainer._step = loss_type, beta, k
    old, ref = (REF, OLD) if swap else (OLD, REF)
    inputs = {"prompt_ids": torch.ones(B, 3, dtype=torch.long), "prompt_mask": torch.ones(B, 3, dtype=torch.long),
              "completion_ids": torch.zeros(B, C * N, dtype=torch.long),
              "completion_mask": torch.ones(B, C * N, dtype=torch.long), "advantages": ADV,
              "old_per_token_logps": old.flatten(1), "ref_per_token_logps": ref.flatten(1) if beta else None,
              "num_items_in_batch": torch.tensor(16.0), **rollout(weights, loss_tokens_k2).to_inputs()}
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    # the policy pass computed exactly the loss tokens of iteration k
    expected_need = torch.zeros(B, C, N, dtype=torch.bool)
    for b, c, i in LOSS_TOKENS[k]:
        expected_need[b, c, i] = True
    assert torch.equal(seen["need"], expected_need)
    return loss.item(), theta.grad


def grad_at(cells):
    g = torch.zeros(B, C, N)
    for (b, c, i), v in cells.items():
        g[b, c, i] = v
    return g


def test_global_stage_grpo_two_level_credit(trainer):
    # img0: t0 r = e^.1 = 1.105171, Aw = 4/3 -> l = -1.473561; t2 r = 1, Aw = 2/3 -> l = -0.666667
    # img1: t1 r = e^-.1 = 0.904837, Aw = -0.4 -> l = 0.361935; t3 r = e^.3 = 1.349859, Aw = -0.4:
    #       -min(-0.539944, -0.48) = 0.539944 (A < 0: the clip does not bind)
    # grpo: mean over images of the per-image mean: ((-1.473561 - 0.666667) / 2 + (0.361935 + 0.539944) / 2) / 2
    loss, grad = loss_and_grad(trainer, 0)
    assert loss == pytest.approx(-0.309587, abs=1e-5)
    # d/dtheta = (1/2)(1/2)(-A w r): -0.368390, -0.166667, 0.090484, 0.134986
    expected = grad_at({(0, 0, 0): -0.368390, (0, 0, 2): -0.166667, (1, 0, 1): 0.090484, (1, 0, 3): 0.134986})
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-5)


def test_global_stage_without_credit_weights_differs(trainer):
    # uniform weights: img0 (-1.105171 - 1) / 2, img1 (0.5 * 0.904837 + 0.5 * 1.349859) / 2 -> (-1.052585 + 0.563674) / 2
    loss, _ = loss_and_grad(trainer, 0, weights=torch.ones(B, N))
    assert loss == pytest.approx(-0.244456, abs=1e-5)


def test_continuous_credit_weights(trainer):
    # continuous credit, earliness with reveal steps img0 [0, 1, 2, 3] (T = 4), img1 [3, 0, 0, 1], lambda = 1:
    # img0 raw 1 + [1, 2/3, 1/3, 0] = [2, 5/3, 4/3, 1], mean 1.5 -> [4/3, 10/9, 8/9, 2/3]
    # img1 raw 1 + [0, 1, 1, 2/3] = [1, 2, 2, 5/3], mean 5/3 -> [0.6, 1.2, 1.2, 1.0]
    from types import SimpleNamespace

    from trl_htgrpo.hierarchy import ContinuousCredit

    reveal = torch.tensor([[0, 1, 2, 3], [3, 0, 0, 1]])
    traj = Trajectory(torch.zeros(B, N, dtype=torch.long), reveal, torch.ones(B, N), torch.zeros(B, N), torch.ones(B, 4))
    w = ContinuousCredit(SimpleNamespace(credit_strength=1.0, credit_signal="earliness"))(traj, STRUCTURE)
    torch.testing.assert_close(w, torch.tensor([[4 / 3, 10 / 9, 8 / 9, 2 / 3], [0.6, 1.2, 1.2, 1.0]]))
    # global stage: img0 t0 -1.105171 * 4/3 = -1.473561, t2 -8/9 = -0.888889; img1 t1 Aw = -0.6, r = 0.904837 -> 0.542902;
    # t3 Aw = -0.5, r = 1.349859 -> 0.674929; ((-1.473561 - 0.888889) / 2 + (0.542902 + 0.674929) / 2) / 2 = -0.286155
    loss, grad = loss_and_grad(trainer, 0, weights=w)
    assert loss == pytest.approx(-0.286155, abs=1e-5)
    torch.testing.assert_close(grad, grad_at({(0, 0, 0): -0.368390, (0, 0, 2): -0.222222, (1, 0, 1): 0.135726,
                                              (1, 0, 3): 0.168732}), rtol=0, atol=1e-5)


@pytest.mark.parametrize("loss_type,value,grads", [
    # refinement stage, context 1: img0 t3 r = e^-.1, Aw = 2/3 -> l = -0.603225; img1 t2 r = e^-.2 = 0.818731,
    # Aw = -0.4 -> 0.327492; t3 r = 1 -> 0.4. Sum 0.124267 over 3 tokens, 1 in img0 and 2 in img1.
    ("grpo", -0.119739, (-0.301612, 0.081873, 0.1)),  # (-0.603225 + (0.327492 + 0.4) / 2) / 2
    ("bnpo", 0.041422, (-0.201075, 0.109164, 0.133333)),  # 0.124267 / 3
    ("dr_grpo", 0.015533, (-0.075403, 0.040937, 0.05)),  # 0.124267 / (B * N) = / 8: N, not max_completion_length
    ("dapo", 0.020711, (-0.100537, 0.054582, 0.066667)),  # 0.124267 / 6: the global count of iteration 2's tokens
])
def test_refinement_stage_reads_the_sketch_context_for_each_loss_type(trainer, loss_type, value, grads):
    loss, grad = loss_and_grad(trainer, 2, loss_type=loss_type, loss_tokens_k2=6.0)
    assert loss == pytest.approx(value, abs=1e-5)
    torch.testing.assert_close(grad, grad_at(dict(zip([(0, 1, 3), (1, 1, 2), (1, 1, 3)], grads))), rtol=0, atol=1e-5)


def test_structure_stage_with_kl_to_the_reference(trainer):
    # TRL 1.16 multiplies the k3 KL by the ratio (use_bias_correction_kl=True): per token beta * r * kl(x),
    # x = ref - theta, kl(x) = e^x - x - 1, d/dtheta (r kl) = r (kl + 1 - e^x).
    # img0 t1: r = e^.3 = 1.349859 > 1.2 with A w = 4/3 > 0: clipped, l = -1.6, no policy gradient;
    #          x = -0.5: kl = 0.106531, r kl = 0.143801, d/dtheta = r (0.106531 + 0.393469) = 0.674929
    # img1 t0: r = e^.2 = 1.221403, A w = -0.8: -min(-0.977122, -0.96) = 0.977122, gradient 0.977122;
    #          x = -0.1: kl = 0.004837, r kl = 0.005908, d/dtheta = r (0.004837 + 0.095163) = 0.122140
    # grpo with beta = 0.1: ((-1.6 + 0.0143801) + (0.977122 + 0.0005908)) / 2 = -0.303953
    loss, grad = loss_and_grad(trainer, 1, beta=0.1)
    assert loss == pytest.approx(-0.303953, abs=1e-5)
    # (1/2)(0 + 0.1 * 0.674929) = 0.033746; (1/2)(0.977122 + 0.1 * 0.122140) = 0.494668
    torch.testing.assert_close(grad, grad_at({(0, 0, 1): 0.033746, (1, 0, 0): 0.494668}), rtol=0, atol=1e-5)
    # old and reference swapped: the ratio and the KL read the other tensor, and the value moves
    swapped, _ = loss_and_grad(trainer, 1, beta=0.1, swap=True)
    assert abs(swapped - loss) > 1e-2
    assert math.isfinite(swapped)
