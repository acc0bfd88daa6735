"""Configuration of the LLaDA architecture (MMaDA and Lumina-DiMOO checkpoints), native to transformers 5.

The field names are those of the published ``config.json`` files, which both families write through the
OLMo-style ``ModelConfig`` dataclass of their ``configuration_llada.py`` (identical in ``Gen-Verse/MMaDA:
models/`` and ``Alpha-VLLM/Lumina-DiMOO: model/``): ``d_model``, ``n_heads``, ``n_kv_heads``, ``n_layers``,
``mlp_hidden_size``, ``embedding_size``, ``weight_tying``, ``block_type`` and so on. Their config classes write
every field into ``config.json``, so a published checkpoint never relies on a default; where a field is
missing here it takes LLaDA-8B's value (the architecture every published checkpoint uses), not OLMo's GPT-2
default (``block_type="sequential"``, ``weight_tying=True``, ``rope=False``, dropout 0.1), which LLaDA's
forward would reject anyway.

Only what the published forward computes for the released checkpoints is implemented; a field value that
selects anything else (OLMo's fused ``att_proj`` block, ALiBi, LayerNorm, QK-norm, block groups) raises a
``ValueError`` that names the field, instead of silently computing something else. Fields that only steer
training-time initialisation or kernels (``init_fn``, ``init_std``, ``init_cutoff_factor``, ``init_device``,
``flash_attention``, ``precision``) are kept for round-tripping and otherwise ignored: random init is always
``normal(0, init_std)``.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

SUPPORTED_VALUES = {
    # field: the values this implementation computes (what every published LLaDA checkpoint uses)
    "block_type": ("llama",),  # separate q/k/v projections + gated MLP (ff_proj * up_proj)
    "activation_type": ("silu",),  # applied to ff_proj, then multiplied by up_proj
    "layer_norm_type": ("rms",),  # RMSLayerNorm (not gemma_rms, not LayerNorm)
    "rope": (True,),  # the published forward asserts RoPE
    "alibi": (False,),  # the published forward asserts no ALiBi
    "attention_layer_norm": (False,),  # no QK-norm
    "block_group_size": (1,),  # block groups change the state-dict keys (transformer.block_groups.*)
}


class LLaDAConfig(PreTrainedConfig):
    """LLaDA: a bidirectional Llama-style transformer (RMSNorm, RoPE, SwiGLU, optional GQA), OLMo field names.

    Aliases that transformers reads: ``hidden_size`` = ``d_model``, ``num_attention_heads`` = ``n_heads``,
    ``num_hidden_layers`` = ``n_layers``, ``max_position_embeddings`` = ``max_sequence_length`` (settable);
    ``num_key_value_heads``, ``head_dim``, ``intermediate_size`` and ``logits_size`` are derived (read-only).

    Defaults are LLaDA-8B's (``GSAI-ML/LLaDA-8B-Base``, also the body of MMaDA-8B and Lumina-DiMOO).
    """

    model_type = "llada"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "max_position_embeddings": "max_sequence_length",
    }

    # sizes
    d_model: int = 4096
    n_heads: int = 32
    n_kv_heads: int | None = 32  # None = n_heads (or 1 with multi_query_attention=True)
    n_layers: int = 32
    mlp_ratio: int = 4  # used only when mlp_hidden_size is None
    mlp_hidden_size: int | None = 12288
    vocab_size: int = 126464
    embedding_size: int | None = 126464  # rows of wte and of the head; None = vocab_size
    max_sequence_length: int = 4096  # RoPE needs no table: longer inputs work as in the published code
    # architecture switches (see SUPPORTED_VALUES)
    block_type: str = "llama"
    activation_type: str = "silu"
    layer_norm_type: str = "rms"
    layer_norm_with_affine: bool = True
    attention_layer_norm: bool = False
    attention_layer_norm_with_affine: bool = True
    multi_query_attention: bool | None = None
    block_group_size: int = 1
    alibi: bool = False
    alibi_bias_max: float = 8.0
    rope: bool = True
    rope_theta: float = 500000.0
    rope_full_precision: bool = True  # rotate q, k in float32 whatever the model dtype
    flash_attention: bool = False  # a kernel choice of the published code; we always use SDPA
    include_bias: bool = False  # bias on every linear (and on the norms when bias_for_layer_norm is None)
    include_qkv_bias: bool | None = False  # bias on q/k/v only
    bias_for_layer_norm: bool | None = False  # None = include_bias
    rms_norm_eps: float = 1e-5
    input_emb_norm: bool = False  # multiply the embeddings by sqrt(d_model)
    scale_logits: bool = False  # multiply the logits by 1 / sqrt(d_model)
    weight_tying: bool = False  # True: the head is wte (no model.transformer.ff_out)
    # dropout (0 in every published config; our forward applies them in training mode like theirs)
    attention_dropout: float = 0.0
    residual_dropout: float = 0.0
    embedding_dropout: float = 0.0
    # tokens
    mask_token_id: int | None = 126336
    eos_token_id: int | None = 126081
    pad_token_id: int | None = 126081
    # initialisation and bookkeeping of the published trainer (kept for round-tripping)
    init_device: str | None = None
    init_fn: str = "mitchell"
    init_std: float = 0.02
    init_cutoff_factor: float | None = None
    precision: str | None = None
    use_cache: bool = False  # no KV cache for a masked-diffusion model; kept because the published forward reads it

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_supported()

    def check_supported(self) -> None:
        """Raise ``ValueError`` naming the first field whose value this implementation does not compute."""
        for field, allowed in SUPPORTED_VALUES.items():
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(
                    f"LLaDAConfig.{field}={value!r} is not implemented by trl_htgrpo's native LLaDA model "
                    f"(supported: {', '.join(repr(a) for a in allowed)}); the published MMaDA and Lumina-DiMOO "
                    f"checkpoints use {allowed[0]!r}"
                )
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        kv = self.num_key_value_heads  # raises on a multi_query_attention / n_kv_heads conflict
        if self.n_heads % kv != 0:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={kv}")
        if self.logits_size < self.vocab_size:
            raise ValueError(f"embedding_size={self.embedding_size} must be at least vocab_size={self.vocab_size}")
        if self.head_dim % 2 != 0:
            raise ValueError(f"head dim d_model / n_heads = {self.head_dim} must be even for RoPE")

    @property
    def num_key_value_heads(self) -> int:
        """``effective_n_kv_heads`` of the published ModelConfig."""
        if self.n_kv_heads is None:
            return 1 if self.multi_query_attention is True else self.n_heads
        if self.multi_query_attention is None:
            return self.n_kv_heads
        expected = 1 if self.multi_query_attention else self.n_heads
        if self.n_kv_heads != expected:
            raise ValueError(
                f"multi_query_attention={self.multi_query_attention} conflicts with n_kv_heads={self.n_kv_heads}"
            )
        return expected

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def intermediate_size(self) -> int:
        """Width of ff_proj / up_proj (and input of the blocks' ff_out)."""
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def logits_size(self) -> int:
        """Rows of ``wte`` and width of the logits: ``embedding_size or vocab_size``."""
        return self.embedding_size or self.vocab_size


class MMaDAConfig(LLaDAConfig):
    """MMaDA's ``config.json`` (model_type ``"mmada"``): every LLaDA field plus MMaDA's own bookkeeping.

    The published ``MMadaConfig`` has no defaults (it stores whatever ``config.json`` holds) and MMaDA-8B lists
    every LLaDA field; MMaDA's extra keys are declared here so they round-trip: ``llm_vocab_size`` (text
    vocabulary before the image codes), ``codebook_size``, ``num_vq_tokens``, ``num_new_special_tokens``,
    ``new_vocab_size`` and ``llm_model_path``. None of them changes the forward: the logits are
    ``embedding_size`` wide; the image codes' offset is the text tokenizer's length (126349 for MMaDA-8B),
    which no config field records.
    """

    model_type = "mmada"

    llm_vocab_size: int | None = None
    codebook_size: int | None = None
    num_vq_tokens: int | None = None
    num_new_special_tokens: int | None = None
    new_vocab_size: int | None = None
    llm_model_path: str | None = None


__all__ = ["LLaDAConfig", "MMaDAConfig", "SUPPORTED_VALUES"]
