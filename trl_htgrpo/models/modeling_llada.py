"""The LLaDA architecture as a native transformers 5 ``PreTrainedModel`` (MMaDA, Lumina-DiMOO checkpoints).

``LLaDAModelLM.from_pretrained(folder)`` loads the published safetensors of ``Gen-Verse/MMaDA-*`` (model_type
``"mmada"``, class ``MMaDAModelLM``) and ``Alpha-VLLM/Lumina-DiMOO`` (model_type ``"llada"``) without
``trust_remote_code``: parameter names follow the published layout exactly (``model.transformer.wte``,
``model.transformer.blocks.N.{attn_norm, q_proj, k_proj, v_proj, attn_out, ff_norm, ff_proj, up_proj,
ff_out}``, ``model.transformer.ln_f``, untied head ``model.transformer.ff_out``; no buffers).

What one block computes (``LLaDALlamaBlock`` of ``Gen-Verse/MMaDA: models/modeling_llada.py``; Lumina-DiMOO's
copy differs only by a KV cache and by dropping every attention mask):

    h = x + attn_out(SDPA(rope(q_proj(n)), rope(k_proj(n)), v_proj(n), bias)),  n = attn_norm(x)
    y = h + ff_out(silu(ff_proj(m)) * up_proj(m)),                              m = ff_norm(h)

RMSNorm normalises in float32 and casts back before the affine weight (``weight * x_hat``). RoPE is the
half-split ("rotate_half", GPT-NeoX) convention over the full head dim, angles ``pos * theta^(-2i/d)``
computed in float32 and applied to float32 copies of q and k (``rope_full_precision``). GQA repeats each
key/value head ``n_heads / n_kv_heads`` times (``repeat_interleave``). Logits: ``ln_f`` then ``ff_out`` (or
``wte`` when ``weight_tying``), times ``1 / sqrt(d_model)`` with ``scale_logits``; width ``embedding_size``.

Forward conventions (shapes: B batch, L sequence, D d_model, H heads, V = embedding_size):

- ``attention_mask`` (B, L), 1 = token: a bidirectional padding mask (keys at 0 are never attended). This
  differs on purpose from the published forward, where a mask with a zero switches to *causal* attention.
- ``attention_bias`` (B, 1, L, L) bool (True = may attend) or float (added to the scores): MMaDA's own
  convention, ``m[:, :, None] & m[:, None, :]``; accepted as is for compatibility. Disallowed entries become
  the dtype's minimum, never -inf, so fully masked rows stay finite (uniform attention), as in theirs.
- ``position_ids`` (B, L): RoPE positions. Default ``arange(L)`` for every row, padding or not, which is what
  both published forwards use (MMaDA's left-padded batches included). Lumina-DiMOO's published forward runs
  one unpadded prompt at a time; the same logits come from a left-padded batch with ``attention_mask`` and
  ``position_ids = (cumsum(attention_mask) - 1).clamp(min=0)``. (RoPE scores depend only on position
  differences, so the default positions change a left-padded row by float rounding only: ~1e-6 at L = 12,
  ~1e-4 at offsets of thousands.)
- Returns ``MaskedLMOutput``: ``logits`` (B, L, V) at every position, no shift. MMaDA's image logits are
  ``logits[:, -1025:-1, 126349:126349 + 8192]``; Lumina-DiMOO's image codes start at ``V - 8192``.

Validated (``tests/models/test_llada.py``): fp32 logits equal the published code of both repositories
(MMaDA commit 3cdb870, Lumina-DiMOO commit 81344e6, run on transformers 4.46.0 / torch 2.13 CPU) to 1e-5 on
tiny random weights, with GQA, padding through ``attention_bias``, and a variant with every bias, tied
weights, ``input_emb_norm``, ``scale_logits``, multi-query attention and ``rope_full_precision=False``; bf16
logits bit-equal to theirs in bf16 (CPU); a left-padded batch with ``attention_mask`` and cumsum positions
equal to Lumina-DiMOO's one-row-at-a-time logits; loading of sharded checkpoints in both layouts through the
Auto classes (fp32, bf16, ``device_map="cpu"``); gradient checkpointing; LoRA targets. Not validated: the real
8B weights (no download here), ``layer_norm_with_affine=False``, autocast (the published code re-casts norms
and masks under autocast; we do not special-case it), dropout beyond "applied where theirs is", GPU kernels,
Lumina-DiMOO's approximate KV-cache path (``use_cache=True`` in its generator), which is not implemented.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from .compat import CheckpointingName
from transformers.modeling_outputs import MaskedLMOutput

from .configuration_llada import LLaDAConfig, MMaDAConfig


class LLaDARMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps)`` in float32, cast back to x's dtype, then ``weight * x_hat (+ bias)``."""

    def __init__(self, size: int, eps: float, affine: bool, bias: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size)) if affine else None
        self.bias = nn.Parameter(torch.zeros(size)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        with torch.autocast(enabled=False, device_type=x.device.type):
            h = x.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
            h = h.to(x.dtype)
        if self.weight is None:
            return h
        return self.weight * h + self.bias if self.bias is not None else self.weight * h


def rotary_angles(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) integer positions -> float32 (sin, cos), each (B, 1, L, head_dim): angle ``pos * theta^(-2i/d)``,
    the half-split layout (the same frequencies in both halves)."""
    device = position_ids.device
    with torch.autocast(device.type, enabled=False):
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float) / head_dim))
        freqs = position_ids.to(torch.float)[..., None] * inv_freq  # (B, L, head_dim / 2)
        angles = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, L, head_dim)
        return angles.sin(), angles.cos()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)  # first and second half of the head dim
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(t: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    return (t * cos + rotate_half(t) * sin).to(t.dtype)


class LLaDABlock(GradientCheckpointingLayer):
    """One pre-norm block: bidirectional GQA attention with RoPE, then the gated MLP (silu on ff_proj)."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        D, H, Hkv = config.d_model, config.n_heads, config.num_key_value_heads
        F_ = config.intermediate_size
        qkv_bias = bool(config.include_bias or config.include_qkv_bias)
        norm_bias = config.include_bias if config.bias_for_layer_norm is None else config.bias_for_layer_norm
        self.n_heads, self.n_kv_heads, self.head_dim = H, Hkv, config.head_dim
        self.rope_full_precision = config.rope_full_precision
        self.attention_dropout = config.attention_dropout
        self.attn_norm = LLaDARMSNorm(D, config.rms_norm_eps, config.layer_norm_with_affine, norm_bias)
        self.q_proj = nn.Linear(D, D, bias=qkv_bias)
        self.k_proj = nn.Linear(D, Hkv * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(D, Hkv * self.head_dim, bias=qkv_bias)
        self.attn_out = nn.Linear(D, D, bias=config.include_bias)
        self.ff_norm = LLaDARMSNorm(D, config.rms_norm_eps, config.layer_norm_with_affine, norm_bias)
        self.ff_proj = nn.Linear(D, F_, bias=config.include_bias)  # gate: silu is applied to this one
        self.up_proj = nn.Linear(D, F_, bias=config.include_bias)
        self.ff_out = nn.Linear(F_, D, bias=config.include_bias)  # down projection
        self.dropout = nn.Dropout(config.residual_dropout)

    def attention(
        self,
        x: torch.Tensor,  # (B, L, D), normed
        bias: torch.Tensor | None,  # (B|1, 1, L|1, L) additive, x's dtype
        sin: torch.Tensor,  # (B|1, 1, L, head_dim) float32
        cos: torch.Tensor,
    ) -> torch.Tensor:
        B, L, D = x.shape
        q = self.q_proj(x).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, hd)
        k = self.k_proj(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, L, hd)
        v = self.v_proj(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, L, hd)
        with torch.autocast(x.device.type, enabled=False):
            q_, k_ = (q.float(), k.float()) if self.rope_full_precision else (q, k)
            q = apply_rotary(q_, sin.type_as(q_), cos.type_as(q_)).type_as(q)
            k = apply_rotary(k_, sin.type_as(k_), cos.type_as(k_)).type_as(k)
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads  # query head h reads key/value head h // rep
            k = k.repeat_interleave(rep, dim=1, output_size=self.n_heads)  # (B, H, L, hd)
            v = v.repeat_interleave(rep, dim=1, output_size=self.n_heads)
        p = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p, is_causal=False)  # (B, H, L, hd)
        return self.attn_out(y.transpose(1, 2).contiguous().view(B, L, D))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attn_norm(x), bias, sin, cos))  # (B, L, D)
        h = self.ff_norm(x)
        h = F.silu(self.ff_proj(h)) * self.up_proj(h)  # (B, L, F)
        return x + self.dropout(self.ff_out(h))


class LLaDAHead(nn.Linear):
    """The untied head ``ff_out`` (parameter names of ``nn.Linear``). ``head(x, vocab=(a, b))`` computes only the
    logits of vocabulary rows ``[a, b)`` (an image codebook), as one module call, so DeepSpeed ZeRO-3 still gathers
    its weight and PEFT sees an ordinary Linear."""

    def forward(self, x: torch.Tensor, vocab: tuple[int, int] | None = None) -> torch.Tensor:
        if vocab is None:
            return super().forward(x)
        a, b = vocab
        return F.linear(x, self.weight[a:b], None if self.bias is None else self.bias[a:b])


class LLaDAModel(nn.Module):
    """The ``transformer`` ModuleDict of the published ``LLaDAModel``: wte, blocks, ln_f and the untied head."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        D, V = config.d_model, config.logits_size
        norm_bias = config.include_bias if config.bias_for_layer_norm is None else config.bias_for_layer_norm
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(V, D),
                emb_drop=nn.Dropout(config.embedding_dropout),
                blocks=nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
                ln_f=LLaDARMSNorm(D, config.rms_norm_eps, config.layer_norm_with_affine, norm_bias),
            )
        )
        if not config.weight_tying:
            self.transformer["ff_out"] = LLaDAHead(D, V, bias=config.include_bias)


class LLaDAPreTrainedModel(CheckpointingName, PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["LLaDABlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """Random init ``normal(0, init_std)``, norms at 1, biases at 0 (not the published ``init_fn`` schemes)."""
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, LLaDARMSNorm):
            if module.weight is not None:
                init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)


class LLaDAModelLM(LLaDAPreTrainedModel):
    """``model(input_ids, attention_mask=None, attention_bias=None, position_ids=None).logits``: (B, L, V)."""

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.generation_config = GenerationConfig(pad_token_id=config.pad_token_id, eos_token_id=config.eos_token_id)
        self.post_init()

    # ------------------------------------------------------------------ embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.transformer.wte = value

    def get_output_embeddings(self) -> nn.Linear | None:
        """The untied head, or None with ``weight_tying`` (the head then *is* ``wte``: nothing to tie or resize)."""
        return None if self.config.weight_tying else self.model.transformer.ff_out

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.model.transformer.ff_out = value

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """transformers' resize (wte and the untied head), then ``embedding_size`` follows the new row count: the
        constructor sizes wte and the head from it, so a resized model saves a config it can be rebuilt from.
        (``vocab_size`` is set to the same count, as transformers does; MMaDA-8B's config has both at 134656.)"""
        embeds = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        self.config.embedding_size = embeds.weight.shape[0]
        head = self.get_output_embeddings()
        if type(head) is nn.Linear:  # transformers rebuilt the head as a plain Linear: same parameters
            head.__class__ = LLaDAHead
        return embeds

    # ------------------------------------------------------------------ forward
    def _attention_bias(
        self,
        attention_mask: torch.Tensor | None,  # (B, L), 1 = token
        attention_bias: torch.Tensor | None,  # (B, 1, L, L) bool or float
        B: int,
        L: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor | None:
        """Additive (B|1, 1, L|1, L) bias in the compute dtype: 0 where allowed, the dtype's minimum elsewhere."""
        if attention_mask is None and attention_bias is None:
            return None
        bias = torch.zeros(1, 1, 1, L, dtype=torch.float, device=device)
        if attention_bias is not None:
            if attention_bias.dim() != 4 or attention_bias.shape[1] != 1 or attention_bias.shape[-2:] != (L, L):
                raise ValueError(f"attention_bias must be (B, 1, {L}, {L}), got {tuple(attention_bias.shape)}")
            if attention_bias.dtype in (torch.bool, torch.int8):
                bias = bias.masked_fill(attention_bias.to(device) == 0, torch.finfo(torch.float).min)
            else:
                bias = bias + attention_bias.to(device=device, dtype=torch.float)
        if attention_mask is not None:
            if attention_mask.shape != (B, L):
                raise ValueError(f"attention_mask must be (B, L) = ({B}, {L}), got {tuple(attention_mask.shape)}")
            keys = attention_mask.to(device).bool()[:, None, None, :]  # (B, 1, 1, L)
            bias = bias.masked_fill(~keys, torch.finfo(torch.float).min)
        bias = bias.to(dtype)
        return bias.masked_fill(bias == float("-inf"), torch.finfo(dtype).min)  # finite, as the published code

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, L)
        attention_mask: torch.Tensor | None = None,  # (B, L), 1 = token: bidirectional padding mask
        attention_bias: torch.Tensor | None = None,  # (B, 1, L, L) bool, True = may attend (MMaDA's convention)
        position_ids: torch.LongTensor | None = None,  # (B, L); default arange(L) in every row
        labels: torch.LongTensor | None = None,  # (B, L), -100 = ignore; cross-entropy at every position, no shift
        inputs_embeds: torch.Tensor | None = None,  # (B, L, D) instead of input_ids
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_positions: torch.LongTensor | None = None,  # (K,) positions whose logits are wanted; None: all L
        logits_vocab: tuple[int, int] | None = None,  # vocabulary rows [a, b) of the logits; None: all V
        **kwargs,  # e.g. use_cache=False from generic callers; ignored (no KV cache for a diffusion model)
    ) -> MaskedLMOutput:
        """``logits_positions`` and ``logits_vocab`` let a caller ask only for the logits it reads (an image's
        positions and codebook): (B, K, b - a) instead of (B, L, V), the same values, a fraction of the memory."""
        if kwargs.get("past_key_values") is not None:
            raise ValueError("LLaDA has no KV cache: past_key_values must be None")
        tr = self.model.transformer
        x = tr.wte(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, D)
        B, L, D = x.shape
        if self.config.input_emb_norm:
            x = x * (self.config.d_model**0.5)
        x = tr.emb_drop(x)
        if position_ids is None:
            position_ids = torch.arange(L, device=x.device)[None, :]  # (1, L)
        elif position_ids.shape[-1] != L:
            raise ValueError(f"position_ids must be (B, {L}), got {tuple(position_ids.shape)}")
        sin, cos = rotary_angles(position_ids.to(x.device), self.config.head_dim, self.config.rope_theta)
        bias = self._attention_bias(attention_mask, attention_bias, B, L, x.dtype, x.device)
        hidden_states = [] if output_hidden_states else None
        for block in tr.blocks:
            if hidden_states is not None:
                hidden_states.append(x)
            x = block(x, bias, sin, cos)
        x = tr.ln_f(x)
        if hidden_states is not None:
            hidden_states.append(x)
        if logits_positions is not None:
            x = x[:, logits_positions.to(x.device)]  # (B, K, D)
        if self.config.weight_tying:
            w = tr.wte.weight if logits_vocab is None else tr.wte.weight[logits_vocab[0] : logits_vocab[1]]
            logits = F.linear(x, w)  # (B, K, V')
        else:
            logits = tr.ff_out(x, logits_vocab)  # (B, K, V')
        if self.config.scale_logits:
            logits = logits * (1 / math.sqrt(self.config.d_model))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.to(logits.device).flatten(), ignore_index=-100)
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=tuple(hidden_states) if hidden_states else None)
        return out if return_dict is not False else out.to_tuple()


class MMaDAModelLM(LLaDAModelLM):
    """MMaDA's checkpoints (model_type ``"mmada"``, published class ``MMadaModelLM``): the same network."""

    config_class = MMaDAConfig


__all__ = ["LLaDAModelLM", "LLaDAPreTrainedModel", "MMaDAModelLM", "LLaDABlock", "LLaDARMSNorm"]
