"""The two published text-to-image loops, restated: references for replay tests and throughput benchmarks.

Our words, the published arithmetic line by line, model calls included:

* :func:`mmada_t2i_generate`: ``MMadaModelLM.t2i_generate`` (``Gen-Verse/MMaDA@3cdb870: models/modeling_mmada.py
  L118-211``, ``models/sampling.py``). B prompts at once: one forward of the 2B conditional and unconditional
  rows per step with the (2B, 1, L, L) ``attention_bias``, full logits (2B, L, W) over the whole sequence and
  vocabulary, guidance ``(1 + w) cond - w uncond`` on those full logits, *then* the slice of the N image positions
  and the 8192 codes; ``torch.multinomial`` at every image position from the untempered softmax with one
  generator for the batch; uniform noise for the Gumbel confidence whose scale ``temperature *= 1 - ratio``
  compounds.
* :func:`lumina_generate_image`: ``generate_image`` (``Alpha-VLLM/Lumina-DiMOO@81344e6:
  generators/image_generation_generator.py L15-151``, ``utils/generation_utils.py``) as ``inference_t2i.py`` calls
  it (``use_cache=False``, its default). Batch size 1: per step one conditional and one unconditional forward,
  each through ``LLaDAForMultiModalGeneration.forward(infer=True)`` (:func:`lumina_infer_forward`: ids to a list
  and back, an all-True bias), full logits (1, L, W), the codebook slice at every position, then the masked
  positions; Gumbel-max draw of the masked positions only, confidence from the untempered softmax, constant
  noise scale. The text-vocabulary size is inferred as the published code does, by one forward of a single
  token.

Each loop takes ``forward``, the model call, so that the same arithmetic runs on any model (the tests replay our
sampler against these loops with the toy model). Deviations, none of which changes a draw:

* MMaDA marks unknown codes with the mask id (126336, outside the codebook); here with -1, the same map for any
  model whose mask id lies outside [0, V) (the toy's does not).
* Lumina-DiMOO returns the ids at the code positions (offset included, newlines removed); here the codebook
  indices, read at the positions that were masked at the start (the same positions in its layout).
* ``input_ids`` / ``prompt`` are cloned, not overwritten in place. ``image_head`` generalises Lumina-DiMOO's
  ``code_start - 2`` (``<answer-start> <boi>``, shared by both branches) for other layouts.
* Both also return the masked map before every step, (B, N) bool each, so that a replay can compare trajectories.

Validated: ``tests/diffusion/test_unmasking.py`` (our sampler with ``sampler="mmada"`` / ``"lumina_dimoo"``
draws the same codes with the same masked maps before every step, row by row, on the toy model). Not validated:
against the authors' code on real weights (their code does not run on transformers 5; ``DESIGN.md`` 4).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: ``models/sampling.py: cosine_schedule`` and ``utils/generation_utils.py: cosine_schedule`` (the same function)
def cosine_schedule(t: torch.Tensor) -> torch.Tensor:
    return torch.cos(t * math.pi * 0.5)


def native_bias_forward(model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """MMaDA's model call: ``model(input_ids, attention_bias=bias).logits`` at every position and vocabulary row."""

    def forward(input_ids: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        return model(input_ids, attention_bias=attention_bias).logits  # (B, L, W)

    return forward


def lumina_infer_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """``LLaDAForMultiModalGeneration.forward(input_ids, infer=True)`` (``model/modeling_xllmx_dimoo.py``): the ids
    go to a Python list and back to a tensor (right padded, here never: one row), the (B, 1, L, L) bias of "both
    are tokens", then ``LLaDAModelLM.forward`` -> full logits (B, L, W)."""

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        rows = input_ids.tolist()
        width = max(len(r) for r in rows)
        lengths = [len(r) for r in rows]
        device = next(model.parameters()).device
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.int64, device=device)
        mask = torch.zeros(len(rows), width, dtype=torch.bool, device=device)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        bias = (mask[:, :, None] & mask[:, None, :]).bool().unsqueeze(1)
        return model(input_ids=ids, attention_bias=bias).logits

    return forward


@torch.no_grad()
def mmada_t2i_generate(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],  # (ids (R, L), bias (R, 1, L, L)) -> (R, L, W)
    input_ids: torch.Tensor,  # (B, L) [pad].. <|t2i|> <bos> text <eos> <|soi|> [MASK]*N <|eoi|>
    uncond_input_ids: torch.Tensor | None,  # (B, L) the same with empty text, or None (no guidance)
    attention_mask: torch.Tensor,  # (B, L) 1 = token
    uncond_attention_mask: torch.Tensor | None,  # (B, L)
    *,
    temperature: float = 1.0,
    timesteps: int = 18,
    guidance_scale: float = 0.0,
    noise_schedule: Callable[[torch.Tensor], torch.Tensor] = cosine_schedule,
    generator: torch.Generator | None = None,
    seq_len: int = 1024,  # N
    mask_token_id: int = 126336,
    text_block: int = 513,  # the published ``resolution + 1``: tokens before <|soi|> (max_text_length + 1)
    image_offset: int = 126349,  # ``len(uni_prompting.text_tokenizer)``
    codebook_size: int = 8192,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """MMaDA's ``t2i_generate``. Returns the codes (B, N) and the masked map (B, N) before every step."""
    N, o, V = seq_len, image_offset, codebook_size
    input_ids = input_ids.clone()
    UNKNOWN = -1  # published: mask_token_id (see the module docstring)
    codes = input_ids[:, -(N + 1):-1].clone()
    codes = torch.where(codes == mask_token_id, UNKNOWN, codes - o)  # (B, N) "input_ids_minus_lm_vocab_size"
    if uncond_input_ids is not None:
        uncond_prefix = uncond_input_ids[:, :text_block]
    states = []
    sampled_ids = None
    for step in range(timesteps):
        states.append(codes == UNKNOWN)
        if uncond_input_ids is not None and guidance_scale > 0:
            uncond_input_ids = torch.cat([uncond_prefix, input_ids[:, text_block:]], dim=1)
            model_input = torch.cat([input_ids, uncond_input_ids])  # (2B, L)
            all_attention_mask = torch.cat([attention_mask, uncond_attention_mask], dim=0)
            attention_bias = (all_attention_mask[:, :, None] & all_attention_mask[:, None, :]).bool().unsqueeze(1)
            logits = forward(model_input, attention_bias)  # (2B, L, W): every position, every vocabulary row
            cond_logits, uncond_logits = torch.chunk(logits, 2, dim=0)
            logits = (1 + guidance_scale) * cond_logits - guidance_scale * uncond_logits  # (B, L, W)
            logits = logits[:, -(N + 1):-1, o : o + V]  # (B, N, V)
        else:
            attention_bias = (attention_mask[:, :, None] & attention_mask[:, None, :]).bool().unsqueeze(1)
            logits = forward(input_ids, attention_bias)[:, -(N + 1):-1, o : o + V]
        probs = logits.softmax(dim=-1)  # (B, N, V)
        sampled = probs.reshape(-1, logits.size(-1))
        sampled_ids = torch.multinomial(sampled, 1, generator=generator)[:, 0].view(*logits.shape[:-1])  # (B, N)
        unknown_map = codes == UNKNOWN
        sampled_ids = torch.where(unknown_map, sampled_ids, codes)
        ratio = 1.0 * (step + 1) / timesteps
        mask_ratio = noise_schedule(torch.tensor(ratio))  # float32
        selected_probs = torch.gather(probs, -1, sampled_ids.long()[..., None]).squeeze(-1)  # (B, N)
        selected_probs = torch.where(unknown_map, selected_probs, torch.finfo(selected_probs.dtype).max)
        mask_len = (N * mask_ratio).floor().unsqueeze(0).to(logits.device)
        mask_len = torch.max(torch.tensor([1], device=logits.device),
                             torch.min(unknown_map.sum(dim=-1, keepdim=True) - 1, mask_len))  # (B, 1)
        temperature = temperature * (1.0 - ratio)
        # models/sampling.py: mask_by_random_topk, gumbel_noise, log
        noise = torch.zeros_like(selected_probs).uniform_(0, 1, generator=generator)
        gumbel = -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
        confidence = torch.log(selected_probs.clamp(min=1e-20)) + temperature * gumbel
        cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
        masking = confidence < cut_off  # (B, N)
        input_ids[:, -(N + 1):-1] = torch.where(masking, mask_token_id, sampled_ids + o)
        codes = torch.where(masking, UNKNOWN, sampled_ids)
    return sampled_ids, states


@torch.no_grad()
def lumina_generate_image(
    forward: Callable[[torch.Tensor], torch.Tensor],  # ids (1, L) -> full logits (1, L, W)
    prompt: torch.Tensor,  # (1, L) template <answer-start> <boi> rows of [MASK] + <newline> <eoi> <answer-end>
    *,
    timesteps: int = 18,
    mask_token_id: int = 126336,
    temperature: float = 1.0,
    cfg_scale: float = 0.0,
    uncon_ids: torch.Tensor,  # (1, Pu) the unconditional template, without <answer-start> <boi>
    code_start: int,  # index of the first code: len(template ids) + 2
    codebook_size: int = 8192,
    noise_schedule: Callable[[torch.Tensor], torch.Tensor] = cosine_schedule,
    text_vocab_size: int | None = None,
    generator: torch.Generator | None = None,
    image_head: int = 2,  # tokens before code_start that both branches share (<answer-start> <boi>)
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Lumina-DiMOO's ``generate_image`` (one image). Returns the codes (1, N) and the masked map before every step."""
    device = prompt.device
    B, P = prompt.shape
    assert B == 1, "batch>1 not supported – wrap in loop if needed"  # as published
    x = prompt.clone()
    vq_mask = x == mask_token_id  # (1, L)
    code_pos = vq_mask[0].nonzero().squeeze(-1)  # (N,) the code positions, row-major
    unknown_cnt = vq_mask.sum(dim=1, keepdim=True)
    vq_len = unknown_cnt
    if text_vocab_size is None:  # the published generator infers it with a one-token forward
        vocab_total = forward(torch.zeros(1, 1, dtype=torch.long, device=device)).size(-1)
        text_vocab_size = vocab_total - codebook_size
    vocab_offset = text_vocab_size
    head = code_start - image_head
    states = []
    for step in range(timesteps):
        if unknown_cnt.item() == 0:
            break
        states.append(vq_mask[:, code_pos].clone())
        if step < timesteps - 1:
            frac = noise_schedule(torch.tensor([(step + 1) / timesteps], device=device))
            keep_n = (vq_len.float() * frac).floor().clamp_min(1).long()
        else:
            keep_n = torch.zeros_like(unknown_cnt)
        if cfg_scale > 0:
            uncond = torch.cat((uncon_ids.to(x.device), x[:, head:]), axis=1)
            uncond_vq_mask = torch.cat((torch.zeros((1, uncon_ids.size()[1]), dtype=torch.bool).to(x.device),
                                        vq_mask[:, head:]), axis=1)
            cond_logits = forward(x)[..., vocab_offset : vocab_offset + codebook_size]  # (1, L, V) of (1, L, W)
            cond_mask_logits = cond_logits[vq_mask].view(B, -1, codebook_size)
            uncond_logits = forward(uncond)[..., vocab_offset : vocab_offset + codebook_size]
            uncond_mask_logits = uncond_logits[uncond_vq_mask].view(B, -1, codebook_size)
            logits = (1 + cfg_scale) * cond_mask_logits - cfg_scale * uncond_mask_logits  # (1, L_t, V)
        else:
            logits = forward(x)[:, vq_mask[0], vocab_offset : vocab_offset + codebook_size]
        # utils/generation_utils.py: gumbel_max_sample, gumbel_noise
        if temperature == 0.0:
            sampled = logits.argmax(dim=-1)
        else:
            u = torch.rand(logits.shape, device=logits.device, dtype=logits.dtype, generator=generator)
            sampled = (logits / temperature + -torch.log(-torch.log(u + 1e-20) + 1e-20)).argmax(dim=-1)  # (1, L_t)
        sampled_full = sampled + vocab_offset
        probs = torch.softmax(logits, dim=-1)
        conf = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)  # (1, L_t)
        flat_idx = vq_mask.nonzero(as_tuple=False)[:, 1]
        x.view(-1)[flat_idx] = sampled_full.view(-1)
        conf_map = torch.full_like(x, -math.inf, dtype=probs.dtype)  # computed and unused, as published
        conf_map.view(-1)[flat_idx] = conf.view(-1)
        # utils/generation_utils.py: mask_by_random_topk
        u = torch.rand(conf.shape, device=conf.device, dtype=conf.dtype, generator=generator)
        confidence = torch.log(conf.clamp_min(1e-20)) + temperature * -torch.log(-torch.log(u + 1e-20) + 1e-20)
        k = keep_n.squeeze(1).long().unsqueeze(1).clamp_(0, conf.size(1) - 1)
        mask_sel = confidence < torch.gather(torch.sort(confidence, dim=-1).values, 1, k)  # (1, L_t) stay masked
        x.view(-1)[flat_idx[mask_sel.view(-1)]] = mask_token_id
        vq_mask = x == mask_token_id
        unknown_cnt = vq_mask.sum(dim=1, keepdim=True)
    return x[:, code_pos] - vocab_offset, states


__all__ = ["mmada_t2i_generate", "lumina_generate_image", "native_bias_forward", "lumina_infer_forward",
           "cosine_schedule"]
