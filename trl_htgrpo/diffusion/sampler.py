"""Confidence-based iterative unmasking with classifier-free guidance, recording the trajectory.

MMaDA's ``t2i_generate`` (``Gen-Verse/MMaDA: models/sampling.py``), step t of T:

1. ``l = (1 + w) l_cond - w l_uncond`` over the codebook at every image position (one batched
   forward of the conditional and unconditional branches);
2. ``p = softmax(l / tau)``; draw ``x_i ~ p_i`` at every still-masked position;
3. confidence ``c_i = log p_i(x_i) + s (1 - r) g_i``, ``g_i ~ Gumbel(0, 1)``, ``r = (t + 1) / T``;
4. keep the ``n_t`` least confident positions masked (``n_t`` from the mask schedule), reveal the rest.

Notation: ``l`` -> ``logits``, ``w`` -> ``guidance_scale``, ``tau`` -> ``temperature``,
``s`` -> ``reveal_noise``, ``n_t`` -> ``masked_counts``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .schedules import masked_counts


@dataclass
class Trajectory:
    """What one rollout drew and how. Shapes: B images, N image tokens, T steps."""

    codes: torch.LongTensor  # (B, N) final codebook indices
    reveal_step: torch.LongTensor  # (B, N) step in 0..T-1 at which each token was revealed
    confidence: torch.Tensor  # (B, N) probability of the drawn token at reveal (guided)
    entropy: torch.Tensor  # (B, N) entropy of the guided predictive distribution at reveal
    masked_entropy: torch.Tensor  # (B, T) mean entropy of still-masked positions at each step

    @property
    def steps(self) -> int:
        return self.masked_entropy.shape[1]


def left_pad(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> (B, P) ids and attention mask, left padded."""
    P = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), P), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, P - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, P - len(s) :] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def sample_images(
    model,
    backbone,
    prompt_ids: list[list[int]],
    steps: int = 12,
    guidance_scale: float = 3.5,
    temperature: float = 1.0,
    reveal_noise: float = 1.0,
    schedule: str = "cosine",
    generator: torch.Generator | None = None,
) -> Trajectory:
    """Draw one image per prompt from the fully masked state."""
    device = next(model.parameters()).device
    B, N = len(prompt_ids), backbone.num_image_tokens
    use_cfg = guidance_scale != 0.0
    seqs = prompt_ids + ([backbone.unconditional_prompt()] * B if use_cfg else [])
    p_ids, p_mask = left_pad(seqs, backbone.pad_token_id, device)  # (B or 2B, P)
    P = p_ids.shape[1]
    counts = masked_counts(N, steps, schedule)

    codes = torch.zeros(B, N, dtype=torch.long, device=device)
    masked = torch.ones(B, N, dtype=torch.bool, device=device)
    reveal_step = torch.full((B, N), -1, dtype=torch.long, device=device)
    confidence = torch.zeros(B, N, device=device)
    entropy = torch.zeros(B, N, device=device)
    masked_entropy = torch.zeros(B, steps, device=device)

    for t in range(steps):
        image_ids = torch.where(masked, backbone.mask_token_id, backbone.codes_to_ids(codes))  # (B, N)
        if use_cfg:
            image_ids = torch.cat([image_ids, image_ids])
        input_ids, attn = backbone.build_inputs(p_ids, p_mask, image_ids)
        logits = backbone.image_logits(backbone.forward_logits(model, input_ids, attn), P).float()
        if use_cfg:
            cond, uncond = logits.chunk(2)
            logits = (1 + guidance_scale) * cond - guidance_scale * uncond  # (B, N, V)
        logp = torch.log_softmax(logits / temperature, dim=-1)  # (B, N, V)
        ent = -(logp.exp() * logp).sum(-1)  # (B, N)
        masked_entropy[:, t] = (ent * masked).sum(-1) / masked.sum(-1).clamp(min=1)
        u = torch.rand(logp.shape, generator=generator, device=device).clamp_(1e-10, 1 - 1e-10)
        drawn = (logp - torch.log(-torch.log(u))).argmax(-1)  # (B, N): Gumbel-max draw from p
        logp_drawn = logp.gather(-1, drawn[..., None]).squeeze(-1)  # (B, N)
        g = -torch.log(-torch.log(torch.rand(B, N, generator=generator, device=device).clamp_(1e-10, 1 - 1e-10)))
        conf = logp_drawn + reveal_noise * (1.0 - (t + 1) / steps) * g
        conf = conf.masked_fill(~masked, float("inf"))  # revealed tokens stay revealed
        keep_masked = torch.zeros_like(masked)
        if counts[t] > 0:
            idx = conf.topk(counts[t], dim=-1, largest=False).indices  # (B, n_t) least confident
            keep_masked.scatter_(1, idx, True)
        reveal = masked & ~keep_masked  # (B, N)
        codes = torch.where(reveal, drawn, codes)
        reveal_step = torch.where(reveal, t, reveal_step)
        confidence = torch.where(reveal, logp_drawn.exp(), confidence)
        entropy = torch.where(reveal, ent, entropy)
        masked = keep_masked
    return Trajectory(codes, reveal_step, confidence, entropy, masked_entropy)
