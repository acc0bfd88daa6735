"""Scoring a rollout's tokens in a masked context: ``log p(x_i | prompt, context)`` at masked positions.

Shape legend: B images, P prompt tokens, N image tokens, V codebook.
"""

from __future__ import annotations

import torch


def context_logps(
    model,
    backbone,
    prompt_ids: torch.Tensor,  # (B, P) left padded
    prompt_mask: torch.Tensor,  # (B, P) 1 = token
    targets: torch.Tensor,  # (B, N) codebook indices of the rollout
    masked: torch.Tensor,  # (B, N) bool: the context, True = masked
    temperature: float = 1.0,
    batch_size: int | None = None,
    guidance_scale: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log softmax(l / tau)`` of each target and the entropy of that distribution, at the masked positions of
    the context (0 at visible ones). -> (B, N), (B, N).

    ``l`` is the conditional logits of one forward of ``prompt + context`` per row (``guidance_scale`` 0, HT-GRPO's
    estimator), or the guided ``(1 + w) l_cond - w l_uncond`` of the rollout's classifier-free guidance, with a
    second forward of the backbone's unconditional prompt + the same context (the distribution the rollout drew
    from; gradients flow through both branches)."""
    B = targets.shape[0]
    batch_size = batch_size or B
    uncond = None
    if guidance_scale:
        from .sampler import left_pad

        uncond = left_pad([backbone.unconditional_prompt()], backbone.pad_token_id, prompt_ids.device)  # (1, P_u)
    logps, ents = [], []
    for i in range(0, B, batch_size):
        sl = slice(i, i + batch_size)
        image_ids = torch.where(masked[sl], backbone.mask_token_id, backbone.codes_to_ids(targets[sl]))  # (b, N)
        ids, attn = backbone.build_inputs(prompt_ids[sl], prompt_mask[sl], image_ids)
        logits = backbone.image_logits(model, ids, attn).float()  # (b, N, V)
        if uncond is not None:
            b = image_ids.shape[0]
            u_ids, u_attn = backbone.build_inputs(uncond[0].expand(b, -1), uncond[1].expand(b, -1), image_ids)
            logits = (1 + guidance_scale) * logits - guidance_scale * backbone.image_logits(model, u_ids, u_attn).float()
        logp_all = torch.log_softmax(logits / temperature, dim=-1)  # (b, N, V)
        logps.append(logp_all.gather(-1, targets[sl, :, None]).squeeze(-1) * masked[sl])
        ents.append(-(logp_all.exp() * logp_all).sum(-1) * masked[sl])
    return torch.cat(logps), torch.cat(ents)
