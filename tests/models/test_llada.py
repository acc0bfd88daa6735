"""The native LLaDA model against the published MMaDA and Lumina-DiMOO code: logits parity, loading, training.

How the goldens (``golden/llada_parity.{json,safetensors}``) were produced, so anyone can regenerate them:

1. Published code, read-only and uncommitted: ``github:Gen-Verse/MMaDA`` at 3cdb8709635beb29f66e4e23cd66060872ac3996
   (``models/configuration_llada.py``, ``modeling_llada.py``, ``modeling_mmada.py``, ``sampling.py``) and
   ``github:Alpha-VLLM/Lumina-DiMOO`` at 81344e60545ae8d70f11039d3450717d974f831b (``model/configuration_llada.py``,
   ``modeling_llada.py``, ``modeling_xllmx_dimoo.py``), extracted with ``git archive HEAD models`` / ``model``.
2. A separate venv: ``python3.11 -m venv ref && ref/bin/pip install torch==2.13.0 transformers==4.46.0
   safetensors numpy pillow`` (CPU, 2 threads). MMaDA's ``models/__init__.py`` imports MAGVIT-v2 (diffusers), so
   each folder was imported as a bare package (``types.ModuleType`` with ``__path__`` set, ``__init__`` not run);
   the two families ran in separate processes (both register model_type "llada" with AutoConfig).
3. Per case (``json[case]``): ``config`` is every field of their ``ModelConfig`` (defaults overridden by the
   tiny sizes: d_model 64, 4 heads, 2 layers, mlp_hidden_size 96, rope_theta 500000; MMaDA adds its own keys and
   ``use_cache``, which its forward reads); the model was built as ``MMadaModelLM(MMadaConfig(**config))``,
   ``LLaDAModelLM(LLaDAConfig(**config))`` (MMaDA's modeling_llada, "variant") or
   ``LLaDAForMultiModalGeneration(LLaDAConfig(**config))`` (Lumina-DiMOO); ``state_dict_shapes`` is its
   ``state_dict()``; the weights are ``seeded_state_dict(state_dict_shapes, weight_seed)`` below (strict load);
   ``model.eval()`` under ``torch.no_grad()``.
4. Calls and recorded logits (``json[case]["call"]``): mmada: a left-padded (3, 12) batch (rows of 12, 9, 5
   tokens, pad id 5) with ``attention_bias = (m[:, :, None] & m[:, None, :]).unsqueeze(1)`` as
   ``t2i_generate`` builds it -> ``mmada.logits``; the same ids without a bias -> ``mmada.logits_no_bias``; the
   model ``.to(torch.bfloat16)`` -> ``mmada.logits_bf16``. variant (every bias, tied head, multi-query attention,
   input_emb_norm, scale_logits, rope_full_precision=False, rope_theta 1e4, mlp_ratio 2, no embedding_size):
   a (2, 10) batch, row 1 padded over 3 positions, with the same bias -> ``variant.logits`` and
   ``variant.logits_bf16``. dimoo: ``model(row[None], infer=True).logits[0]`` for each of three unpadded rows
   (its published generation loop: one prompt at a time) -> ``dimoo.row{i}``, and a (2, 12) batch of
   equal-length rows -> ``dimoo.equal_length_batch``.

The tests were checked by breaking the model on purpose, one change at a time; each made at least one test
fail: silu on up_proj instead of ff_proj; interleaved (GPT-J) RoPE; rope_theta ignored; RMSNorm eps outside the
sqrt; RMSNorm affine applied in float32 (bf16 test only); RoPE always in float32 (bf16 test only, through the
fraction of bit-equal logits); GQA heads tiled instead of interleaved; scale_logits or input_emb_norm dropped;
attention_bias ignored; attention_mask ignored; position_ids ignored (caught only by the stretched positions:
RoPE is shift-invariant); attn_out renamed; an ff_out head built under weight_tying.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from trl_htgrpo.models import (
    LLADA_LORA_TARGET_MODULES,
    LLaDAConfig,
    LLaDAModelLM,
    MMaDAConfig,
    MMaDAModelLM,
)

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "llada_parity.json").read_text())
LOGITS = load_file(GOLDEN / "llada_parity.safetensors")
FAMILY = {
    "mmada": (MMaDAConfig, MMaDAModelLM),
    "variant": (LLaDAConfig, LLaDAModelLM),
    "dimoo": (LLaDAConfig, LLaDAModelLM),
}
TOL = dict(atol=1e-5, rtol=1e-5)

pytestmark = pytest.mark.usefixtures("one_thread")


def seeded_state_dict(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """Framework-independent weights: one generator, keys in sorted order, fp32 normals, scaled per kind."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        t = torch.randn(shapes[key], generator=g, dtype=torch.float32)
        if len(shapes[key]) == 2:  # linear and embedding weights: unit-variance outputs
            out[key] = t / shapes[key][1] ** 0.5
        elif key.endswith(".bias"):
            out[key] = 0.1 * t
        else:  # norm weights
            out[key] = 1.0 + 0.1 * t
    return out


def golden_model(case: str) -> LLaDAModelLM:
    cfg_cls, cls = FAMILY[case]
    model = cls(cfg_cls(**META[case]["config"])).eval()
    model.load_state_dict(seeded_state_dict(META[case]["state_dict_shapes"], META[case]["weight_seed"]), strict=True)
    return model


def padded_inputs(case: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L) ids, (B, L) bool mask and MMaDA's (B, 1, L, L) bias of a golden case."""
    ids = torch.tensor(META[case]["input_ids"])
    m = torch.tensor(META[case]["attention_mask"]).bool()
    return ids, m, (m[:, :, None] & m[:, None, :]).unsqueeze(1)


def left_pad(rows: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(map(len, rows))
    ids = torch.full((len(rows), L), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r) :] = torch.tensor(r)
        mask[i, L - len(r) :] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("case", ["mmada", "variant", "dimoo"])
def test_state_dict_layout_is_the_published_one(case):
    model = golden_model(case)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == META[case]["state_dict_shapes"]  # same keys, same shapes, no buffers


@pytest.mark.parametrize("case", ["mmada", "variant"])
@torch.no_grad()
def test_logits_equal_published_code_with_mmadas_attention_bias(case):
    model = golden_model(case)
    ids, _, bias = padded_inputs(case)
    torch.testing.assert_close(model(ids, attention_bias=bias).logits, LOGITS[f"{case}.logits"], **TOL)
    if case == "mmada":
        torch.testing.assert_close(model(ids).logits, LOGITS["mmada.logits_no_bias"], **TOL)


@torch.no_grad()
def test_attention_mask_equals_mmadas_bias_on_real_tokens():
    """Our (B, L) padding mask gives MMaDA's both-are-tokens logits at every real position (padding rows differ:
    theirs attend uniformly, ours attend to the real tokens; nothing reads them)."""
    model = golden_model("mmada")
    ids, m, _ = padded_inputs("mmada")
    out = model(ids, attention_mask=m.long()).logits  # (B, L, V)
    torch.testing.assert_close(out[m], LOGITS["mmada.logits"][m], **TOL)


def assert_bf16_tracks_published(out: torch.Tensor, case: str):
    """Our bf16 logits follow the published code's bf16 rounding path, on any CPU.

    Bit-identical on the machine that made the goldens. CPUs whose bf16 kernels round otherwise (an AMD EPYC
    without AVX-512 leaves 35% of the logits bit-equal) are held to bf16's own noise, ``noise = |theirs_bf16 -
    theirs_fp32|``: ``mean|ours - theirs_bf16| <= 0.6 mean(noise)`` and ``max|ours - theirs_bf16| <= max(noise)``.
    Measured there: ours 0.41 (mmada) and 0.49 (variant) of the mean noise; rotating q, k in the other precision
    (rope_full_precision flipped) 0.69 and 0.74; RMSNorm in bf16 instead of fp32 1.1 and 20."""
    ref, f32 = LOGITS[f"{case}.logits_bf16"].float(), LOGITS[f"{case}.logits"].float()  # (B, L, V)
    assert out.dtype == torch.bfloat16
    diff, noise = (out.float() - ref).abs(), (ref - f32).abs()
    assert diff.mean() <= 0.6 * noise.mean(), (diff.mean() / noise.mean()).item()
    assert diff.max() <= noise.max(), (diff.max() / noise.max()).item()


@pytest.mark.parametrize("case", ["mmada", "variant"])
@torch.no_grad()
def test_bf16_logits_equal_published_code_in_bf16(case):
    """Same dtype handling as theirs (norms in fp32 then cast, RoPE in fp32 or not, masks at the bf16 minimum)."""
    model = golden_model(case).to(torch.bfloat16)
    ids, _, bias = padded_inputs(case)
    assert_bf16_tracks_published(model(ids, attention_bias=bias).logits, case)


@torch.no_grad()
def test_lumina_unpadded_rows_equal_published_code():
    model = golden_model("dimoo")
    for i, row in enumerate(META["dimoo"]["rows"]):
        torch.testing.assert_close(model(torch.tensor([row])).logits[0], LOGITS[f"dimoo.row{i}"], **TOL)
    batch = torch.tensor(META["dimoo"]["equal_length_batch"])
    torch.testing.assert_close(model(batch).logits, LOGITS["dimoo.equal_length_batch"], **TOL)


@torch.no_grad()
def test_lumina_left_padded_batch_with_cumsum_positions_equals_published_unpadded_rows():
    """How Lumina-DiMOO is batched here: its published forward ignores every mask, so it runs one prompt at a
    time; our padding mask plus positions counted from each row's first token reproduce those logits."""
    model = golden_model("dimoo")
    rows = META["dimoo"]["rows"]
    ids, mask = left_pad(rows, pad=7)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L)
    out = model(ids, attention_mask=mask, position_ids=position_ids).logits  # (B, L, V)
    L = ids.shape[1]
    for i, row in enumerate(rows):
        torch.testing.assert_close(out[i, L - len(row) :], LOGITS[f"dimoo.row{i}"], **TOL)
    # RoPE scores see only position differences: the default arange(L) (what both published forwards use)
    # shifts a padded row's phases, which changes its logits by rounding only (here < 1e-5, more at long L);
    # the positions are honoured though: stretching them changes everything
    plain = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(plain[2, L - len(rows[2]) :], LOGITS["dimoo.row2"], atol=1e-4, rtol=1e-4)
    stretched = model(ids, attention_mask=mask, position_ids=2 * position_ids).logits
    assert (stretched[2, L - len(rows[2]) :] - LOGITS["dimoo.row2"]).abs().max() > 1e-2


@torch.no_grad()
def test_padding_content_and_amount_do_not_reach_real_tokens():
    model = golden_model("mmada")
    ids, m, _ = padded_inputs("mmada")
    pos = (m.long().cumsum(-1) - 1).clamp(min=0)
    ref = model(ids, attention_mask=m, position_ids=pos).logits
    noisy = torch.where(m, ids, torch.randint_like(ids, 0, 256))  # other ids at the padding
    torch.testing.assert_close(model(noisy, attention_mask=m, position_ids=pos).logits[m], ref[m], **TOL)
    more = F.pad(ids, (4, 0), value=5)  # four more columns of left padding
    m2 = F.pad(m, (4, 0), value=False)
    out = model(more, attention_mask=m2, position_ids=F.pad(pos, (4, 0))).logits[:, 4:]
    torch.testing.assert_close(out[m], ref[m], **TOL)
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------- loading
def write_published_folder(path: Path, case: str, architecture: str, n_shards: int = 3) -> dict:
    """A checkpoint as published: config.json with their field names (+ model_type, architectures, auto_map),
    safetensors shards with their keys and an index; returns the weights written."""
    path.mkdir(parents=True, exist_ok=True)
    config = dict(META[case]["config"])
    model_type = "mmada" if case == "mmada" else "llada"
    config.update(
        model_type=model_type,
        architectures=[architecture],
        auto_map={
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": f"modeling_llada.{architecture}",
            "AutoModelForCausalLM": f"modeling_llada.{architecture}",
        },
        torch_dtype="float32",
        transformers_version="4.46.0",
    )
    (path / "config.json").write_text(json.dumps(config, indent=2))
    weights = seeded_state_dict(META[case]["state_dict_shapes"], META[case]["weight_seed"])
    keys = sorted(weights)
    weight_map = {}
    for s in range(n_shards):
        name = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        shard = {k: weights[k] for k in keys[s::n_shards]}
        save_file(shard, path / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in weights.values())
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    return weights


@pytest.mark.parametrize(
    "case, architecture, cls",
    [("mmada", "MMadaModelLM", MMaDAModelLM), ("dimoo", "LLaDAForMultiModalGeneration", LLaDAModelLM),
     ("variant", "LLaDAModelLM", LLaDAModelLM)],
)
def test_auto_classes_load_published_layout_without_remote_code(tmp_path, case, architecture, cls):
    weights = write_published_folder(tmp_path / case, case, architecture)
    config = AutoConfig.from_pretrained(tmp_path / case)
    assert type(config) is FAMILY[case][0]
    model, info = AutoModel.from_pretrained(tmp_path / case, output_loading_info=True)
    assert type(model) is cls
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys, no errors
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, weights[k], atol=0, rtol=0)
    assert model.generation_config is not None  # TRL's GRPOTrainer needs one
    m16 = AutoModelForMaskedLM.from_pretrained(tmp_path / case, dtype=torch.bfloat16, device_map="cpu")
    assert type(m16) is cls and {p.dtype for p in m16.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in m16.parameters()} == {"cpu"}
    if case != "dimoo":
        ids, _, bias = padded_inputs(case)
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(ids, attention_bias=bias).logits, LOGITS[f"{case}.logits"], **TOL)
            out16 = m16.eval()(ids, attention_bias=bias).logits
        assert_bf16_tracks_published(out16, case)


def test_save_and_reload_round_trip_keeps_published_fields(tmp_path):
    model = golden_model("mmada")
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for key, value in META["mmada"]["config"].items():
        assert saved[key] == value, key
    again = AutoModel.from_pretrained(tmp_path)
    assert type(again) is MMaDAModelLM
    for k, v in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, atol=0, rtol=0)


@pytest.mark.parametrize(
    "field, value",
    [("block_type", "sequential"), ("activation_type", "swiglu"), ("layer_norm_type", "default"),
     ("block_group_size", 2), ("alibi", True), ("rope", False), ("attention_layer_norm", True)],
)
def test_unsupported_published_values_fail_naming_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=f"LLaDAConfig.{field}="):
        LLaDAConfig(**{**META["dimoo"]["config"], field: value})
    write_published_folder(tmp_path, "dimoo", "LLaDAForMultiModalGeneration", n_shards=1)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(ValueError, match=field):
        AutoModel.from_pretrained(tmp_path)


def test_config_aliases_and_derived_sizes():
    c = MMaDAConfig(**META["mmada"]["config"])
    assert (c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.num_key_value_heads) == (64, 4, 2, 2)
    assert (c.head_dim, c.intermediate_size, c.logits_size, c.max_position_embeddings) == (16, 96, 256, 64)
    assert c.llm_vocab_size == 200 and c.codebook_size == 48
    v = LLaDAConfig(**META["variant"]["config"])  # multi_query_attention, mlp_ratio 2, no embedding_size
    assert (v.num_key_value_heads, v.intermediate_size, v.logits_size) == (1, 128, 200)
    c.hidden_size = 32
    assert c.d_model == 32
    with pytest.raises(ValueError, match="multi_query_attention"):
        LLaDAConfig(n_heads=4, d_model=64, n_kv_heads=2, multi_query_attention=True)
    d = LLaDAConfig()  # LLaDA-8B
    assert (d.d_model, d.n_layers, d.intermediate_size, d.rope_theta, d.weight_tying) == (4096, 32, 12288, 5e5, False)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("kwargs", [None, {"use_reentrant": False}])
def test_gradient_checkpointing_gives_the_same_gradients(kwargs):
    torch.manual_seed(0)
    ids, m, _ = padded_inputs("mmada")
    labels = torch.where(m, ids, torch.full_like(ids, -100))

    def grads(checkpointing: bool) -> tuple[dict[str, torch.Tensor], int]:
        model = golden_model("mmada").train()
        if checkpointing:  # what transformers' Trainer calls
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        calls = []
        model.model.transformer.blocks[0].ff_proj.register_forward_hook(lambda *a: calls.append(1))
        model(ids, attention_mask=m, labels=labels).loss.backward()
        return {n: p.grad for n, p in model.named_parameters()}, len(calls)

    (plain, n_plain), (ckpt, n_ckpt) = grads(False), grads(True)
    assert (n_plain, n_ckpt) == (1, 2)  # the checkpointed block ran again in the backward pass
    assert plain.keys() == ckpt.keys() and all(g is not None for g in plain.values())
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_loss_is_cross_entropy_at_every_labelled_position():
    model = golden_model("dimoo")
    ids = torch.tensor(META["dimoo"]["equal_length_batch"])
    labels = ids.clone()
    labels[:, ::2] = -100
    out = model(ids, labels=labels, output_hidden_states=True)
    expected = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    assert len(out.hidden_states) == 3  # each block's input, then the final normed states (the published order)
    torch.testing.assert_close(model.model.transformer.ff_out(out.hidden_states[-1]), out.logits)


def test_resized_embeddings_save_a_config_that_rebuilds_the_model(tmp_path):
    model = golden_model("dimoo")  # vocab_size 240, embedding_size 256
    model.resize_token_embeddings(320)
    assert model.config.embedding_size == model.config.vocab_size == 320
    assert model.model.transformer.ff_out.weight.shape == (320, 64)
    model.save_pretrained(tmp_path)
    again, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    ids = torch.tensor([[1, 2, 319]])
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_lora_regex_wraps_the_block_projections_and_not_the_head():
    peft = pytest.importorskip("peft")
    model = golden_model("mmada")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=LLADA_LORA_TARGET_MODULES)
    wrapped = peft.get_peft_model(model, config)
    hit = sorted(n.removeprefix("base_model.model.") for n, mod in wrapped.named_modules() if hasattr(mod, "lora_A")
                 and isinstance(mod, peft.tuners.lora.LoraLayer))
    projections = ["attn_out", "ff_out", "ff_proj", "k_proj", "q_proj", "up_proj", "v_proj"]
    assert hit == sorted(f"model.transformer.blocks.{i}.{p}" for i in range(2) for p in projections)
    assert not isinstance(wrapped.base_model.model.model.transformer.ff_out, peft.tuners.lora.LoraLayer)
    ids, _, bias = padded_inputs("mmada")
    with torch.no_grad():  # LoRA B starts at zero: the wrapped model computes the published logits
        torch.testing.assert_close(wrapped(input_ids=ids, attention_bias=bias).logits, LOGITS["mmada.logits"], **TOL)
