"""MMaDA and Lumina-DiMOO adapters: layouts with a stub tokenizer, logits and decoding with tiny native models and
decoders (no hub, no real weights).

The stub tokenizer knows the few special strings of the two layouts; its word ids are made up. Models are the
native LLaDA with the real vocabulary widths, on tiny images (2x2 codes) and short prompts, so that ids and
slices land where the published code puts them.
"""

import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from trl_htgrpo.backbones import (
    BACKBONES, Backbone, LuminaDiMOOBackbone, MMaDABackbone, backbone_for,
)
from trl_htgrpo.backbones.lumina_dimoo import LUMINA_DIMOO_TOKENS, T2I_SYSTEM_PROMPT
from trl_htgrpo.backbones.mmada import padding_attention_bias
from trl_htgrpo.diffusion.sampler import left_pad, sample_images

BOS, EOS = 126080, 126081  # LLaDA's <|startoftext|> / <|endoftext|> (MMaDA config: bos 126080, eos 126081)
# Lumina-DiMOO's tag tokens: made-up ids for the stub, except <uncondition>, whose id the adapter checks.
TAGS = {"<system>": 126340, "</system>": 126341, "<user>": 126342, "</user>": 126343,
        "<uncondition>": LUMINA_DIMOO_TOKENS["uncondition"]}
MMADA_VOCAB = 134656  # MMaDA-8B's logits width
LUMINA_VOCAB = LUMINA_DIMOO_TOKENS["image_offset"] + 8192  # 134548


class StubTokenizer:
    """Whitespace words -> ids 1000.. (first come, first served); the tags above -> their ids."""

    bos_token_id, eos_token_id, pad_token_id = BOS, EOS, EOS

    def __init__(self, always_bos=False, tags=TAGS):
        self.words, self.always_bos, self.tags = {}, always_bos, dict(tags)

    def word_id(self, w):
        return self.words.setdefault(w, 1000 + len(self.words))

    def __call__(self, text, add_special_tokens=True):
        ids = [BOS] if (add_special_tokens or self.always_bos) else []
        pattern = "(" + "|".join(re.escape(t) for t in self.tags) + ")"
        for part in re.split(pattern, text):
            if part in self.tags:
                ids.append(self.tags[part])
            else:
                ids += [self.word_id(w) for w in part.split()]
        return {"input_ids": ids}


class FullLogits(nn.Module):
    """A model with no restricted head: full-vocabulary logits from a fixed random table; records its calls."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab, self.anchor, self.calls = vocab, nn.Parameter(torch.zeros(1)), []

    def forward(self, input_ids=None, attention_mask=None, attention_bias=None, position_ids=None):
        self.calls.append({"attention_mask": attention_mask, "attention_bias": attention_bias, "position_ids": position_ids})
        B, L = input_ids.shape
        g = torch.Generator().manual_seed(L)
        return SimpleNamespace(logits=torch.randn(B, L, self.vocab, generator=g))


def tiny_llada(width, seed=0):
    from trl_htgrpo.models import LLaDAConfig, LLaDAModelLM

    torch.manual_seed(seed)
    cfg = LLaDAConfig(d_model=32, n_heads=2, n_kv_heads=2, n_layers=1, mlp_hidden_size=64, vocab_size=width,
                      embedding_size=width, rope_theta=10000.0)
    return LLaDAModelLM(cfg).eval()


@pytest.fixture
def tok():
    return StubTokenizer()


@pytest.fixture
def mmada(tok):
    return MMaDABackbone(tok, num_image_tokens=4, max_text_length=10)


@pytest.fixture
def lumina(tok):
    return LuminaDiMOOBackbone(tok, grid=(2, 2))


# ---------------------------------------------------------------------------------------------- MMaDA
def test_mmada_ids_and_protocol(mmada):
    assert isinstance(mmada, Backbone)
    assert (mmada.mask_token_id, mmada.pad_token_id, mmada.image_offset) == (126336, 126093, 126349)
    assert (mmada.t2i_id, mmada.soi_id, mmada.eoi_id) == (126088, 126084, 126085)
    assert (mmada.num_image_tokens, mmada.codebook_size) == (4, 8192)
    assert MMaDABackbone(StubTokenizer()).max_prompt_length == 514  # 512 + 1 (UniversalPrompting) + <|soi|>


def test_mmada_prompt_layout(mmada, tok):
    (ids,) = mmada.encode_prompts(["a red cat"])
    words = [tok.word_id(w) for w in ("a", "red", "cat")]
    assert ids == [126088, BOS, *words, EOS, 126084]
    assert mmada.unconditional_prompt() == [126088, BOS, EOS, 126084]
    # a tokenizer that puts <bos> in front anyway gives the same layout (MMaDA prepends <bos> only if missing)
    tok2 = StubTokenizer(always_bos=True)
    tok2.words = dict(tok.words)
    assert MMaDABackbone(tok2, num_image_tokens=4).encode_prompts(["a red cat"]) == [ids]


def test_mmada_truncation(tok):
    bb = MMaDABackbone(tok, num_image_tokens=4, max_text_length=6)  # <|t2i|> <bos> 4 words <eos>: 7 = 6 + 1
    with pytest.warns(UserWarning, match="truncated"):
        (ids,) = bb.encode_prompts(["one two three four five six seven"])
    assert ids == [126088, BOS, *[tok.word_id(w) for w in "one two three four".split()], EOS, 126084]
    assert len(ids) == bb.max_prompt_length == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shown once
        bb.encode_prompts(["one two three four five six seven"])


def test_mmada_build_inputs_pads_the_text_block_to_its_fixed_length(mmada):
    prompts = mmada.encode_prompts(["a red cat", "dog"]) + [mmada.unconditional_prompt()]
    p_ids, p_mask = left_pad(prompts, mmada.pad_token_id)
    codes = torch.tensor([[0, 1, 8190, 8191], [5, 6, 7, 8], [9, 9, 9, 9]])
    image = torch.where(torch.tensor([True, False, False, True]), mmada.mask_token_id, mmada.codes_to_ids(codes))
    ids, attn = mmada.build_inputs(p_ids, p_mask, image)
    P = mmada.max_prompt_length  # 12: MMaDA pads <|t2i|> <bos> text <eos> to max_text_length + 1, then <|soi|>
    assert P == 12 and ids.shape == attn.shape == (3, P + 4 + 1)
    for b, p in enumerate(prompts):
        row, pad = ids[b].tolist(), P - len(p)
        assert row == [126093] * pad + p + image[b].tolist() + [126085]
        assert attn[b].tolist() == [0] * pad + [1] * (len(p) + 5)
    assert ids[0, P:P + 4].tolist() == [126336, 126350, 126349 + 8190, 126336]
    loose = MMaDABackbone(StubTokenizer(), num_image_tokens=4, max_text_length=10, fixed_padding=False)
    assert loose.build_inputs(p_ids, p_mask, image)[0].shape[1] == p_ids.shape[1] + 5  # padded to the batch


def test_mmada_image_logits_are_its_published_slice_with_its_attention_bias(mmada):
    ids = torch.randint(0, 1000, (2, 17))
    attn = torch.ones(2, 17, dtype=torch.long)
    attn[0, :3] = 0
    model = FullLogits(MMADA_VOCAB)
    out = mmada.image_logits(model, ids, attn)
    full = model(ids).logits
    assert torch.equal(out, full[:, -5:-1, 126349:126349 + 8192])  # MMaDA's logits[:, -(N + 1):-1, offset:]
    assert torch.equal(model.calls[0]["attention_bias"], padding_attention_bias(attn))
    MMaDABackbone(StubTokenizer(), num_image_tokens=4, attention="mask").image_logits(model, ids, attn)
    assert torch.equal(model.calls[-1]["attention_mask"], attn) and model.calls[-1]["attention_bias"] is None


def test_native_model_computes_only_the_image_logits_and_they_are_the_same(mmada, lumina):
    """The native LLaDA is asked for the image positions and codebook rows only: equal to slicing its full logits."""
    for bb, width in ((mmada, 134656), (lumina, 126356 + 8192)):
        model = tiny_llada(width)
        prompts = bb.encode_prompts(["a red cat", "dog"])
        p_ids, p_mask = left_pad(prompts, bb.pad_token_id)
        ids, attn = bb.build_inputs(p_ids, p_mask, torch.full((2, 4), bb.mask_token_id))
        with torch.no_grad():
            fast = bb.image_logits(model, ids, attn)
            slow = bb.image_logits(lambda **kw: model(**{k: v for k, v in kw.items() if not k.startswith("logits_")}),
                                   ids, attn)
        assert fast.shape == (2, 4, 8192)
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_mmada_codes_round_trip(mmada):
    codes = torch.tensor([[0, 1, 4095, 8191]])
    ids = mmada.codes_to_ids(codes)
    assert ids.tolist() == [[126349, 126350, 130444, 134540]]
    assert torch.equal(mmada.ids_to_codes(ids), codes)


def test_attention_bias_semantics():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    bias = padding_attention_bias(mask)
    assert bias.shape == (2, 1, 5, 5) and bias.dtype == torch.bool
    assert bias[1].all()
    assert not bias[0, 0, :2].any() and not bias[0, 0, :, :2].any()  # padding neither attends nor is attended
    assert bias[0, 0, 2:, 2:].all()  # real tokens see each other in both directions (not causal)


def test_mmada_decodes_with_magvitv2_and_truncates_pixels(tok, tmp_path):
    from real_layouts import save_tiny_magvitv2

    from trl_htgrpo.models import mmada_to_uint8

    bare = MMaDABackbone(tok, num_image_tokens=4)
    with pytest.raises(RuntimeError, match="--vq_model_name_or_path"):
        bare.decode_images(torch.zeros(1, 4, dtype=torch.long))
    bb = MMaDABackbone(tok, vq_decoder=str(save_tiny_magvitv2(tmp_path / "vq")), num_image_tokens=4)
    codes = torch.tensor([[0, 1, 2, 9000], [3, 3, 3, 3]])
    images = bb.decode_images(codes)
    assert len(images) == 2 and images[0].size == (32, 32) and images[0].mode == "RGB"
    raw = bb.vq_decoder.decode(codes.clamp(0, 8191))  # codes clamped to the codebook, like MMaDA's script
    assert np.array_equal(np.asarray(images[0]), mmada_to_uint8(raw)[0].numpy())
    assert mmada_to_uint8(torch.zeros(1, 3, 1, 1))[0, 0, 0, 0].item() == 127  # (0 + 1) / 2 * 255 = 127.5, truncated


# ---------------------------------------------------------------------------------------------- Lumina-DiMOO
def test_lumina_ids_and_protocol(lumina):
    assert isinstance(lumina, Backbone)
    assert (lumina.mask_token_id, lumina.image_offset, lumina.newline_id) == (126336, 126356, 126084)
    assert (lumina.boi_id, lumina.eoi_id) == (126349, 126350)
    assert (lumina.answer_start_id, lumina.answer_end_id) == (126354, 126355)
    assert (lumina.num_image_tokens, lumina.codebook_size, lumina.image_block_length) == (4, 8192, 6)
    default = LuminaDiMOOBackbone(StubTokenizer())
    assert (default.num_image_tokens, default.max_prompt_length) == (4096, 1026)  # 1024 px, the published default


def test_lumina_prompt_layout(lumina, tok):
    system = [tok.word_id(w) for w in T2I_SYSTEM_PROMPT.split()]
    (ids,) = lumina.encode_prompts(["a red cat"])
    words = [tok.word_id(w) for w in ("a", "red", "cat")]
    head = [BOS, TAGS["<system>"], *system, TAGS["</system>"], TAGS["<user>"]]
    assert ids == head + words + [TAGS["</user>"], 126354, 126349]
    assert lumina.unconditional_prompt() == head + [126351, TAGS["</user>"], 126354, 126349]


def test_lumina_truncation_and_tokenizer_check(tok):
    bb = LuminaDiMOOBackbone(tok, grid=(2, 2), max_prompt_length=20)
    with pytest.warns(UserWarning, match="truncated"):
        (ids,) = bb.encode_prompts([" ".join(f"w{i}" for i in range(40))])
    assert len(ids) == 20 and ids[-3:] == [TAGS["</user>"], 126354, 126349]
    assert ids[-4] == tok.word_id("w4")  # 5 text tokens fit: 20 - 12 (bos, 3 tags, 8 system words) - 1 - 2
    no_uncond = {k: v for k, v in TAGS.items() if k != "<uncondition>"}
    with pytest.warns(UserWarning, match="uncondition"):
        LuminaDiMOOBackbone(StubTokenizer(tags=no_uncond), grid=(2, 2))


def test_lumina_build_inputs_rows_and_newlines(tok):
    bb = LuminaDiMOOBackbone(tok, grid=(2, 3))
    prompts = bb.encode_prompts(["a red cat", "dog"])
    p_ids, p_mask = left_pad(prompts, bb.pad_token_id)
    P = p_ids.shape[1]
    codes = torch.arange(12).reshape(2, 6) * 700
    masked = torch.tensor([[True] * 6, [False, True, False, True, False, True]])
    image = torch.where(masked, bb.mask_token_id, bb.codes_to_ids(codes))
    ids, attn = bb.build_inputs(p_ids, p_mask, image)
    assert ids.shape == attn.shape == (2, P + 2 * 4 + 2)
    c = image.tolist()
    for b in range(2):
        assert ids[b, P:].tolist() == c[b][:3] + [126084] + c[b][3:] + [126084] + [126350, 126355]
        assert attn[b, P:].tolist() == [1] * 10
        assert attn[b, :P].tolist() == p_mask[b].tolist()
    assert (ids[0] == bb.mask_token_id).sum() == 6  # the fully masked image: newlines are never masked
    pos = bb.image_positions(P)
    assert pos.tolist() == [P, P + 1, P + 2, P + 4, P + 5, P + 6]
    assert torch.equal(ids[:, pos], image)
    with pytest.raises(ValueError, match="grid"):
        bb.build_inputs(p_ids, p_mask, image[:, :5])


def test_lumina_image_logits_read_the_code_positions_with_cumsum_positions(lumina):
    B, P, (H, W) = 2, 5, lumina.grid
    L = P + H * (W + 1) + 2
    ids = torch.randint(0, 1000, (B, L))
    attn = torch.ones(B, L, dtype=torch.long)
    attn[1, :2] = 0
    model = FullLogits(LUMINA_VOCAB)
    out = lumina.image_logits(model, ids, attn)
    pos = lumina.image_positions(P)
    assert pos.tolist() == [P, P + 1, P + 3, P + 4]  # the newline after each row is skipped
    assert torch.equal(out, model(ids).logits[:, pos, 126356:126356 + 8192])
    assert model.calls[0]["position_ids"][1, :4].tolist() == [0, 0, 0, 1]  # counted from the first real token
    assert torch.equal(model.calls[0]["attention_mask"], attn)


def test_lumina_left_padded_batch_equals_rows_drawn_alone(lumina):
    """Lumina-DiMOO's published loop runs one unpadded prompt at a time; batched with a padding mask and cumsum
    positions, the native model gives each row the same logits."""
    model = tiny_llada(126356 + 8192)
    prompts = lumina.encode_prompts(["a", "a much longer prompt than the first one"])
    image = torch.full((2, 4), lumina.mask_token_id)
    p_ids, p_mask = left_pad(prompts, lumina.pad_token_id)
    with torch.no_grad():
        batched = lumina.image_logits(model, *lumina.build_inputs(p_ids, p_mask, image))
        for b in range(2):
            a_ids, a_mask = left_pad(prompts[b : b + 1], lumina.pad_token_id)
            alone = lumina.image_logits(model, *lumina.build_inputs(a_ids, a_mask, image[:1]))
            torch.testing.assert_close(batched[b], alone[0], rtol=1e-5, atol=1e-5)


def test_lumina_codes_round_trip(lumina):
    codes = torch.tensor([[0, 1, 8191, 42]])
    ids = lumina.codes_to_ids(codes)
    assert ids.tolist() == [[126356, 126357, 134547, 126398]]
    assert torch.equal(lumina.ids_to_codes(ids), codes)


def test_lumina_decodes_with_its_vqmodel_and_rounds_pixels(tok, tmp_path):
    from real_layouts import save_tiny_lumina

    from trl_htgrpo.models import lumina_dimoo_to_uint8

    with pytest.raises(RuntimeError, match="--vq_model_name_or_path"):
        LuminaDiMOOBackbone(tok, grid=(2, 2)).decode_images(torch.zeros(1, 4, dtype=torch.long))
    folder = save_tiny_lumina(tmp_path / "ckpt")
    from trl_htgrpo.models.vq import find_vq_decoder

    bb = LuminaDiMOOBackbone(tok, vq_decoder=find_vq_decoder(folder), grid=(2, 2))
    codes = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 9999]])
    images = bb.decode_images(codes)
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    raw = bb.vq_decoder.decode(codes.clamp(0, 8191).view(2, 2, 2))
    assert np.array_equal(np.asarray(images[1]), lumina_dimoo_to_uint8(raw)[1].numpy())


# ---------------------------------------------------------------------------------------------- loading, registry
def test_checkpoints_load_with_their_adapter_and_refuse_the_other(tmp_path):
    from real_layouts import save_tiny_lumina, save_tiny_magvitv2, save_tiny_mmada
    from transformers import AutoModel, AutoTokenizer

    m_dir, l_dir = save_tiny_mmada(tmp_path / "mmada"), save_tiny_lumina(tmp_path / "lumina")
    vq = save_tiny_magvitv2(tmp_path / "magvit")
    mm, lm = AutoModel.from_pretrained(m_dir), AutoModel.from_pretrained(l_dir)
    mtok, ltok = AutoTokenizer.from_pretrained(m_dir), AutoTokenizer.from_pretrained(l_dir)
    bb = backbone_for(mm, mtok, checkpoint=str(m_dir), vq_model_name_or_path=str(vq))
    assert isinstance(bb, MMaDABackbone) and bb.num_image_tokens == 4  # num_vq_tokens of the checkpoint
    with pytest.raises(FileNotFoundError, match="MMaDA checkpoints carry no VQ model: pass --vq_model_name_or_path"):
        backbone_for(mm, mtok, checkpoint=str(m_dir))
    with pytest.raises(ValueError, match="image_size=512: an MMaDA checkpoint draws 32x32 images"):
        backbone_for(mm, mtok, checkpoint=str(m_dir), vq_model_name_or_path=str(vq), image_size=512)
    lb = backbone_for(lm, ltok, checkpoint=str(l_dir), image_size=32)
    assert isinstance(lb, LuminaDiMOOBackbone) and lb.grid == (2, 2) and lb.vq_decoder.subfolder == "vqvae"
    with pytest.raises(ValueError, match="image_size=500.*multiples of 16"):
        backbone_for(lm, ltok, checkpoint=str(l_dir), image_size=500)
    # the other family's weights: the error names both
    with pytest.raises(ValueError, match=r"\(134656 logits.*does not fit the lumina_dimoo backbone.*it is mmada's"):
        LuminaDiMOOBackbone.from_model(mm, ltok)
    with pytest.raises(ValueError, match=r"\(134548 logits.*does not fit the mmada backbone.*it is lumina_dimoo's"):
        MMaDABackbone.from_model(lm, mtok)


def test_backbone_for_model_types(tok):
    from trl_htgrpo.plugins import load_plugins

    load_plugins()  # the shapes world registers itself through the entry point
    assert {"shapes_mdm", "mmada", "llada"} <= set(BACKBONES)
    with pytest.raises(ValueError, match=r"supported model types: \[.*'llada', 'mmada'"):
        backbone_for(SimpleNamespace(config=SimpleNamespace(model_type="bert")), tok)


@pytest.mark.parametrize("family", ["mmada", "lumina"])
def test_sampler_draws_through_adapter_with_its_published_rule(family, mmada, lumina):
    bb, width = {"mmada": (mmada, 134656), "lumina": (lumina, 126356 + 8192)}[family]
    model = tiny_llada(width)
    prompts = bb.encode_prompts(["a red cat", "dog"])
    traj = sample_images(model, bb, prompts, steps=3, guidance_scale=3.5, seeds=[0, 1],
                         sampler=bb.sampling_defaults["sampler"])
    assert traj.codes.shape == (2, 4) and ((traj.codes >= 0) & (traj.codes < 8192)).all()
    assert (traj.reveal_step >= 0).all()  # every token revealed
