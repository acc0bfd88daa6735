"""The shapes masked-diffusion model: a bidirectional transformer as a ``PreTrainedModel``.

Shapes: B batch, L sequence, D hidden, H heads, N = image_grid**2 image tokens, V vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from ..models.compat import CheckpointingName
from transformers.modeling_outputs import MaskedLMOutput

from .configuration import ShapesDiffusionConfig


def sinusoidal_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed embedding: half the channels encode the row, half the column."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(0, half, 2).float() / half)  # (half/2,)
    pos = torch.arange(grid).float()[:, None] * freqs[None]  # (grid, half/2)
    axis = torch.cat([pos.sin(), pos.cos()], dim=-1)  # (grid, half)
    rows = axis[:, None, :].expand(grid, grid, half)
    cols = axis[None, :, :].expand(grid, grid, half)
    return torch.cat([rows, cols], dim=-1).reshape(grid * grid, dim)


class Block(GradientCheckpointingLayer):
    def __init__(self, config: ShapesDiffusionConfig):
        super().__init__()
        D = config.hidden_size
        self.n_head = config.num_attention_heads
        self.grid = config.image_grid
        self.conv = nn.Conv2d(D, D, 3, padding=1, groups=D)
        self.ln1 = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(D, config.intermediate_size), nn.GELU(), nn.Linear(config.intermediate_size, D)
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, D = x.shape
        N = self.grid * self.grid
        img = x[:, L - N - 1 : L - 1]  # (B, N, D)
        img = img + self.conv(img.transpose(1, 2).reshape(B, D, self.grid, self.grid)).flatten(2).transpose(1, 2)
        x = torch.cat([x[:, : L - N - 1], img, x[:, L - 1 :]], dim=1)
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)
        p = self.dropout.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)  # (B, H, L, D/H)
        x = x + self.dropout(self.proj(y.transpose(1, 2).reshape(B, L, D)))
        return x + self.dropout(self.mlp(self.ln2(x)))


class ShapesDiffusionModel(CheckpointingName, PreTrainedModel):
    """``model(input_ids, attention_mask).logits``: (B, L, V) logits at every position, no shift."""

    config_class = ShapesDiffusionConfig
    base_model_prefix = "shapes"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Block"]

    def __init__(self, config: ShapesDiffusionConfig):
        super().__init__(config)
        D = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, D)
        self.pos = nn.Embedding(config.max_position_embeddings, D)
        self.register_buffer("pos2d", sinusoidal_2d(config.image_grid, D), persistent=False)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.ln_f = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(D, config.vocab_size, bias=False)
        self.generation_config = GenerationConfig(
            pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if module is self:
            self.pos2d.copy_(sinusoidal_2d(self.config.image_grid, self.config.hidden_size))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def position_ids(self, attention_mask: torch.Tensor | None, B: int, L: int, device) -> torch.LongTensor:
        """(B, L) 1D positions that do not depend on left padding: prompt tokens count real tokens
        (``cumsum(mask) - 1``), the image block and ``<eoi>`` sit at ``max_text_positions + i``."""
        N = self.config.image_grid**2
        P = L - N - 1
        if attention_mask is None:
            text = torch.arange(P, device=device).expand(B, P)
        else:
            text = (attention_mask[:, :P].long().cumsum(-1) - 1).clamp(min=0)  # (B, P)
        if P > self.config.max_text_positions:
            raise ValueError(f"prompt of {P} tokens exceeds max_text_positions={self.config.max_text_positions}")
        image = self.config.max_text_positions + torch.arange(N + 1, device=device).expand(B, N + 1)
        return torch.cat([text, image], dim=1)

    def forward(
        self,
        input_ids: torch.LongTensor,  # (B, L)
        attention_mask: torch.Tensor | None = None,  # (B, L), 1 = attend
        labels: torch.LongTensor | None = None,  # (B, L), -100 = ignore
        **kwargs,
    ) -> MaskedLMOutput:
        B, L = input_ids.shape
        N = self.config.image_grid**2
        if L < N + 2:
            raise ValueError(f"sequence length {L} must be at least N + 2 = {N + 2}")
        x = self.embed(input_ids) + self.pos(self.position_ids(attention_mask, B, L, input_ids.device))  # (B, L, D)
        x = x + F.pad(self.pos2d, (0, 0, L - N - 1, 1)).to(x.dtype)  # 2D positions on the image block
        attn = None
        if attention_mask is not None:
            attn = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L) key padding
        for block in self.blocks:
            x = block(x, attn)
        logits = self.lm_head(self.ln_f(x))  # (B, L, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)
