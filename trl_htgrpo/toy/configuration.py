"""Configuration of the shapes masked-diffusion model."""

from __future__ import annotations

from transformers import PretrainedConfig


class ShapesDiffusionConfig(PretrainedConfig):
    """A small LLaDA-style bidirectional transformer over ``[prompt] <soi> [image] <eoi>``.

    The image block is the ``image_grid**2`` positions just before the last token (MMaDA's layout).
    1D positions ignore left padding: prompt tokens are numbered from their first real token, the
    image block from ``max_text_positions``, so the same prompt sees the same positions in any batch;
    the model adds a fixed 2D sinusoidal embedding and a residual depthwise 3x3 convolution there.
    """

    model_type = "shapes_mdm"

    def __init__(
        self,
        vocab_size: int = 57,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 512,
        max_position_embeddings: int = 256,
        max_text_positions: int = 64,
        image_grid: int = 12,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 2,
        eos_token_id: int | None = 3,
        mask_token_id: int = 7,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.max_text_positions = max_text_positions
        if max_text_positions + image_grid**2 + 1 > max_position_embeddings:
            raise ValueError(
                f"max_position_embeddings={max_position_embeddings} must hold max_text_positions + N + 1 = "
                f"{max_text_positions + image_grid**2 + 1}"
            )
        self.image_grid = image_grid
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
