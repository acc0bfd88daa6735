"""Masked-diffusion pretraining of the shapes model (MaskGIT/MMaDA objective).

Per example: a scene drawn for a random GenEval-style prompt of any tag and composition; a
progress ``r ~ U(0, 1)``; ``ceil(gamma(r) N)`` image tokens masked with ``gamma(r) = cos(pi r / 2)``;
cross-entropy on the masked tokens; the prompt replaced by the unconditional one with probability
``cond_dropout`` (10%) so that classifier-free guidance works.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion.sampler import left_pad
from ..diffusion.schedules import mask_ratio
from .prompts import compositions
from .scenes import render_scene, sample_scene


@dataclass
class PretrainArgs:
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    cond_dropout: float = 0.1
    seed: int = 0
    log_every: int = 50


def random_examples(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """n (prompt, codes (N,)) pairs over every tag and composition of the world."""
    comps = list(compositions().values())
    prompts, codes = [], []
    for _ in range(n):
        keys, make, _ = comps[rng.integers(len(comps))]
        meta = make(keys[rng.integers(len(keys))])
        prompts.append(meta["prompt"])
        codes.append(render_scene(sample_scene(meta, rng)).reshape(-1))
    return prompts, np.stack(codes)


def masked_batch(backbone, prompts, codes, rng: np.random.Generator, cond_dropout: float, generator):
    """Model inputs and labels for one pretraining batch. codes: (B, N) ints."""
    B, N = codes.shape
    uncond = backbone.unconditional_prompt()
    ids = [uncond if rng.random() < cond_dropout else p for p in backbone.encode_prompts(prompts)]
    p_ids, p_mask = left_pad(ids, backbone.pad_token_id)  # (B, P)
    x = torch.as_tensor(codes, dtype=torch.long)  # (B, N)
    r = torch.rand(B, generator=generator, dtype=torch.float64)
    n_mask = torch.ceil(mask_ratio(r) * N).clamp(min=1).long()  # (B,)
    scores = torch.rand(B, N, generator=generator)
    rank = scores.argsort(-1).argsort(-1)  # (B, N) random rank of each position
    masked = rank < n_mask[:, None]  # (B, N)
    image_ids = torch.where(masked, backbone.mask_token_id, backbone.codes_to_ids(x))
    input_ids, attn = backbone.build_inputs(p_ids, p_mask, image_ids)
    return input_ids, attn, p_ids.shape[1], x, masked


def pretrain(model, backbone, args: PretrainArgs, log=print) -> list[dict]:
    """Train ``model`` in place; returns the logged history."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)

    def lr_at(step):
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        frac = (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    history, t0, run_loss, run_acc = [], time.time(), 0.0, 0.0
    for step in range(args.steps):
        prompts, codes = random_examples(rng, args.batch_size)
        input_ids, attn, P, x, masked = masked_batch(backbone, prompts, codes, rng, args.cond_dropout, gen)
        logits = backbone.image_logits(model, input_ids, attn)  # (B, N, V)
        loss = F.cross_entropy(logits[masked].float(), x[masked])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        run_loss += loss.item()
        run_acc += (logits[masked].argmax(-1) == x[masked]).float().mean().item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            k = (step % args.log_every) + 1
            rec = {"step": step + 1, "loss": run_loss / k, "masked_acc": run_acc / k, "lr": sched.get_last_lr()[0],
                   "elapsed_s": time.time() - t0}
            history.append(rec)
            log(" ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in rec.items()))
            run_loss = run_acc = 0.0
    model.eval()
    return history
