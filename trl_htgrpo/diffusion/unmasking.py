"""Unmasking rules: one step of a family's published sampler, exactly, with its own random draws.

Every rule takes the guided codebook logits of step t and decides what is drawn at each still-masked
position and which positions stay masked. Each image (row b) draws from its own ``torch.Generator`` so a
row's trajectory does not depend on its batch; within a row, the calls, shapes, dtypes and order of the
random draws are those of the published loop, so a row replays that loop run alone with the same generator.

Notation: ``l`` guided logits (B, N, V) in the model's dtype, ``tau`` -> ``temperature`` (TRL's), ``s`` ->
``reveal_noise``, ``n_t`` -> tokens kept masked after step t, ``r = (t + 1) / T``, ``gamma`` the mask schedule.

* ``"maskgit"`` (the shapes world's): Gumbel-max draw ``x ~ softmax(l / tau)`` at every position, confidence
  ``log p(x) + s (1 - r) g`` with ``g ~ Gumbel`` (linear annealing), ``n_t`` from :func:`masked_counts`
  (float64, at least one token revealed per step), the ``n_t`` least confident stay masked (top-k). fp32.
* ``"mmada"`` (``Gen-Verse/MMaDA: models/modeling_mmada.py t2i_generate, models/sampling.py``):
  ``x ~ softmax(l / tau)`` by ``torch.multinomial`` at every position (MMaDA has no softmax temperature:
  tau = 1, the default, is its draw), revealed positions keep their token; confidence ``log p(x) + s_t g``
  with ``s_t = s * prod_{u<=t} (1 - (u + 1) / T)`` (its ``temperature *= 1 - ratio`` inside the loop, before
  use), revealed positions ``log(finfo.max)``; ``n_t = max(1, min(unknown - 1, floor(N gamma(r))))`` in
  float32; positions with confidence strictly below the ``n_t``-th smallest stay masked; at the last step the
  one token left masked takes its draw (MMaDA returns every position's draw). In the logits' dtype.
* ``"lumina_dimoo"`` (``Alpha-VLLM/Lumina-DiMOO: generators/image_generation_generator.py,
  utils/generation_utils.py``): only the L_t still-masked positions are drawn, Gumbel-max on ``l / tau`` with
  ``G(u) = -log(-log(u + 1e-20) + 1e-20)``; confidence ``log(p_1(x)) + s G(u')`` with the *untempered*
  ``p_1 = softmax(l)`` and a constant scale (Lumina-DiMOO's ``temperature`` is both tau and s: set both to
  1, the defaults, to reproduce it); ``n_t = clamp(max(1, floor(N gamma(r))), 0, L_t - 1)`` in float32 and 0
  at the last step; positions strictly below the ``n_t``-th smallest confidence stay masked. In the logits'
  dtype.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..registry import Registry, Rule
from .schedules import SCHEDULES, masked_counts

SAMPLERS = Registry("sampler", field="sampler")


def gamma32(r: float, schedule: str) -> torch.Tensor:
    """The mask schedule at progress r computed in float32, as both published loops do (a 0-dim tensor)."""
    if schedule == "cosine":
        return torch.cos(torch.tensor(r, dtype=torch.float32) * math.pi * 0.5)
    return SCHEDULES[schedule](torch.tensor(r, dtype=torch.float32))


class UnmaskingRule(Rule):
    """``rule.step(logits, masked, codes, t, T, gens) -> (codes, masked)`` after step t (0-based)."""

    def __init__(self, args):
        super().__init__(args)
        self.temperature = float(getattr(args, "temperature", 1.0))
        self.reveal_noise = float(getattr(args, "reveal_noise", 1.0))
        self.schedule = getattr(args, "mask_schedule", "cosine")

    def start(self, B: int, N: int, T: int) -> None:
        """Called before step 0 of a batch of B images of N tokens and T steps."""

    def step(self, logits: torch.Tensor, masked: torch.Tensor, codes: torch.Tensor, t: int, T: int,
             gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """logits (B, N, V) guided; masked (B, N) bool; codes (B, N) long (revealed tokens) -> new codes, masked."""
        raise NotImplementedError


@SAMPLERS.register
class MaskGITRule(UnmaskingRule):
    name = "maskgit"

    def start(self, B, N, T):
        self.counts = masked_counts(N, T, self.schedule)

    def step(self, logits, masked, codes, t, T, gens):
        B, N, V = logits.shape
        logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)  # (B, N, V)
        u = torch.stack([torch.rand((N, V), generator=g, device=logits.device) for g in gens]).clamp_(1e-10, 1 - 1e-10)
        v = torch.stack([torch.rand((N,), generator=g, device=logits.device) for g in gens]).clamp_(1e-10, 1 - 1e-10)
        drawn = (logp - torch.log(-torch.log(u))).argmax(-1)  # (B, N): Gumbel-max draw from p
        logp_drawn = logp.gather(-1, drawn[..., None]).squeeze(-1)  # (B, N)
        conf = logp_drawn + self.reveal_noise * (1.0 - (t + 1) / T) * -torch.log(-torch.log(v))
        conf = conf.masked_fill(~masked, float("inf"))  # revealed tokens stay revealed
        keep = torch.zeros_like(masked)
        if self.counts[t] > 0:
            keep.scatter_(1, conf.topk(self.counts[t], dim=-1, largest=False).indices, True)  # n_t least confident
        reveal = masked & ~keep
        return torch.where(reveal, drawn, codes), keep


@SAMPLERS.register
class MMaDARule(UnmaskingRule):
    name = "mmada"

    def start(self, B, N, T):
        self.noise = self.reveal_noise  # MMaDA's `temperature`, multiplied by (1 - ratio) every step

    def step(self, logits, masked, codes, t, T, gens):
        B, N, V = logits.shape
        probs = (logits / self.temperature if self.temperature != 1.0 else logits).softmax(dim=-1)  # (B, N, V)
        drawn = torch.stack([torch.multinomial(probs[b], 1, generator=g)[:, 0] for b, g in enumerate(gens)])
        drawn = torch.where(masked, drawn, codes)  # (B, N)
        ratio = (t + 1) / T
        mask_len = (N * gamma32(ratio, self.schedule)).floor().view(1, 1).to(logits.device)
        mask_len = torch.max(torch.tensor([1], device=logits.device),
                             torch.min(masked.sum(-1, keepdim=True) - 1, mask_len))  # (B, 1)
        selected = probs.gather(-1, drawn[..., None]).squeeze(-1)  # (B, N)
        selected = torch.where(masked, selected, torch.finfo(selected.dtype).max)
        self.noise = self.noise * (1.0 - ratio)
        u = torch.stack([torch.zeros_like(selected[b]).uniform_(0, 1, generator=g) for b, g in enumerate(gens)])
        gumbel = -torch.log(torch.clamp(-torch.log(torch.clamp(u, min=1e-20)), min=1e-20))
        confidence = torch.log(torch.clamp(selected, min=1e-20)) + self.noise * gumbel
        cut_off = torch.sort(confidence, dim=-1).values.gather(1, mask_len.long())  # (B, 1)
        keep = confidence < cut_off
        if t == T - 1:  # MMaDA returns every position's draw: the token left masked takes its draw
            keep = torch.zeros_like(keep)
        return torch.where(keep, codes, drawn), keep & masked


@SAMPLERS.register
class LuminaDiMOORule(UnmaskingRule):
    name = "lumina_dimoo"

    @staticmethod
    def gumbel(u: torch.Tensor) -> torch.Tensor:
        return -torch.log(-torch.log(u + 1e-20) + 1e-20)

    def start(self, B, N, T):
        self.N = N

    def step(self, logits, masked, codes, t, T, gens):
        B, N, V = logits.shape
        new_codes, new_masked = codes.clone(), masked.clone()
        if t < T - 1:
            ratio = torch.tensor([(t + 1) / T], device=logits.device)
            keep_n = (torch.tensor([[self.N]], device=logits.device).float() * torch.cos(0.5 * math.pi * ratio)
                      if self.schedule == "cosine" else self.N * gamma32((t + 1) / T, self.schedule).view(1, 1))
            keep_n = keep_n.floor().clamp_min(1).long()
        else:
            keep_n = torch.zeros(1, 1, dtype=torch.long, device=logits.device)
        for b, g in enumerate(gens):
            pos = masked[b].nonzero().squeeze(-1)  # (L,) still-masked positions, in order
            L = pos.numel()
            if L == 0:
                continue
            lg = logits[b, pos][None]  # (1, L, V)
            if self.temperature == 0:
                drawn = lg.argmax(-1)
            else:
                drawn = (lg / self.temperature + self.gumbel(torch.rand(lg.shape, dtype=lg.dtype, generator=g,
                                                                         device=lg.device))).argmax(-1)  # (1, L)
            conf = lg.softmax(-1).gather(-1, drawn[..., None]).squeeze(-1)  # (1, L) untempered
            noise = self.gumbel(torch.rand(conf.shape, dtype=conf.dtype, generator=g, device=conf.device))
            c = torch.log(conf.clamp_min(1e-20)) + self.reveal_noise * noise
            k = keep_n.clamp(0, L - 1)
            stay = (c < c.sort(-1).values.gather(1, k))[0]  # (L,)
            new_codes[b, pos] = torch.where(stay, codes[b, pos], drawn[0])
            new_masked[b, pos] = stay
        return new_codes, new_masked
