"""Iterative unmasking with classifier-free guidance, recording the trajectory.

Step t of T, for B prompts (after MMaDA's ``t2i_generate``, ``Gen-Verse/MMaDA: models/sampling.py``):

1. ``l = (1 + w) l_cond - w l_uncond`` over the codebook at every image position (one batched forward of the
   conditional and unconditional branches; ``w`` -> ``guidance_scale``);
2. the family's unmasking rule (:mod:`.unmasking`: ``"maskgit"``, ``"mmada"``, ``"lumina_dimoo"``) draws tokens
   at masked positions and keeps the least confident masked, each image with its own generator;
3. the trajectory records, for every token, its reveal step, the probability and entropy of
   ``softmax(l / tau)`` at that step, and the mean entropy of the still-masked positions at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

import torch

from .unmasking import SAMPLERS


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
    seeds: Sequence[int] | None = None,
    sampler: str = "maskgit",
) -> Trajectory:
    """Draw one image per prompt from the fully masked state with the unmasking rule ``sampler``.

    ``seeds``: one per prompt (default 0, 1, ...); row b draws all its random numbers from its own generator
    seeded with ``seeds[b]``, so an image does not depend on the batch it is drawn in (micro-batch size, rank,
    order)."""
    device = next(model.parameters()).device
    B, N = len(prompt_ids), backbone.num_image_tokens
    seeds = list(range(B)) if seeds is None else list(seeds)
    if len(seeds) != B:
        raise ValueError(f"got {len(seeds)} seeds for {B} prompts")
    gens = [torch.Generator(device=device).manual_seed(int(s) % (2**63 - 1)) for s in seeds]
    rule = SAMPLERS.get_rule(sampler)(SimpleNamespace(temperature=temperature, reveal_noise=reveal_noise,
                                                      mask_schedule=schedule))
    rule.start(B, N, steps)
    use_cfg = guidance_scale != 0.0
    seqs = prompt_ids + ([backbone.unconditional_prompt()] * B if use_cfg else [])
    p_ids, p_mask = left_pad(seqs, backbone.pad_token_id, device)  # (B or 2B, P)

    codes = torch.zeros(B, N, dtype=torch.long, device=device)
    masked = torch.ones(B, N, dtype=torch.bool, device=device)
    reveal_step = torch.full((B, N), -1, dtype=torch.long, device=device)
    confidence = torch.zeros(B, N, device=device)
    entropy = torch.zeros(B, N, device=device)
    masked_entropy = torch.zeros(B, steps, device=device)

    for t in range(steps):
        if not masked.any():
            break
        image_ids = torch.where(masked, backbone.mask_token_id, backbone.codes_to_ids(codes))  # (B, N)
        if use_cfg:
            image_ids = torch.cat([image_ids, image_ids])
        input_ids, attn = backbone.build_inputs(p_ids, p_mask, image_ids)
        logits = backbone.image_logits(model, input_ids, attn)  # (B or 2B, N, V)
        if use_cfg:
            cond, uncond = logits.chunk(2)
            logits = (1 + guidance_scale) * cond - guidance_scale * uncond  # (B, N, V), the model's dtype
        logp = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, N, V) recorded, not drawn from
        ent = -(logp.exp() * logp).sum(-1)  # (B, N)
        masked_entropy[:, t] = (ent * masked).sum(-1) / masked.sum(-1).clamp(min=1)
        new_codes, new_masked = rule.step(logits, masked, codes, t, steps, gens)
        reveal = masked & ~new_masked  # (B, N)
        reveal_step = torch.where(reveal, t, reveal_step)
        confidence = torch.where(reveal, logp.gather(-1, new_codes[..., None]).squeeze(-1).exp(), confidence)
        entropy = torch.where(reveal, ent, entropy)
        codes, masked = new_codes, new_masked
    return Trajectory(codes, reveal_step, confidence, entropy, masked_entropy)
