"""The shapes backbone adapter: MMaDA's layout, truncation, and the codebook <-> vocabulary maps."""

import warnings

import pytest
import torch
from types import SimpleNamespace

from trl_htgrpo.backbones import Backbone
from trl_htgrpo.toy import ShapesBackbone
from trl_htgrpo.diffusion.sampler import left_pad
from trl_htgrpo.toy.tokenizer import build_tokenizer

N = 144


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture()
def bb(tok):
    return ShapesBackbone(tok)


def ids_of(tok, *tokens):
    return tok.convert_tokens_to_ids(list(tokens))


def test_ids_and_protocol(bb):
    assert isinstance(bb, Backbone)
    assert (bb.t2i_id, bb.soi_id, bb.eoi_id, bb.mask_token_id, bb.pad_token_id, bb.image_offset) == (4, 5, 6, 7, 0, 44)
    assert (bb.num_image_tokens, bb.codebook_size, bb.max_text_length, bb.max_prompt_length) == (144, 13, 24, 28)


def test_encode_prompts_layout(bb, tok):
    (ids,) = bb.encode_prompts(["a photo of a red square"])
    assert ids == ids_of(tok, "<|t2i|>", "<bos>", "a", "photo", "of", "a", "red", "square", "<eos>", "<|soi|>")
    assert bb.unconditional_prompt() == ids_of(tok, "<|t2i|>", "<bos>", "<eos>", "<|soi|>")  # no text


def test_build_inputs_layout(bb, tok):
    prompts = bb.encode_prompts(["a photo of a red square", "a photo of two crosses and a blue circle"])
    p_ids, p_mask = left_pad(prompts + [bb.unconditional_prompt()], bb.pad_token_id)
    P = p_ids.shape[1]
    assert P == 2 + 9 + 2  # the longest prompt: 9 words + 4 layout tokens
    codes = torch.arange(3 * N).view(3, N) % 13
    ids, mask = bb.build_inputs(p_ids, p_mask, bb.codes_to_ids(codes))
    assert ids.shape == mask.shape == (3, P + N + 1)
    pad, t2i, bos, eos, soi, eoi = ids_of(tok, "[PAD]", "<|t2i|>", "<bos>", "<eos>", "<|soi|>", "<|eoi|>")
    words = ids_of(tok, "a", "photo", "of", "a", "red", "square")
    # [PAD]*3 <|t2i|> <bos> 6 words <eos> <|soi|> image(144) <|eoi|>
    assert ids[0].tolist() == [pad] * 3 + [t2i, bos] + words + [eos, soi] + (codes[0] + 44).tolist() + [eoi]
    assert mask[0].tolist() == [0] * 3 + [1] * (P - 3 + N + 1)
    assert ids[1, :P].tolist() == prompts[1] and mask[1].all()
    # the unconditional row: [PAD]*9 <|t2i|> <bos> <eos> <|soi|> image <|eoi|>
    assert ids[2, :P].tolist() == [pad] * 9 + [t2i, bos, eos, soi]
    assert mask[2].tolist() == [0] * 9 + [1] * (4 + N + 1)
    assert mask.dtype == torch.long


def test_long_prompts_truncated_with_a_single_warning(bb, tok):
    long = " ".join(["red"] * 30)
    with pytest.warns(UserWarning, match=r"prompt of 30 tokens truncated to the backbone's 24 \(shown once\)") as rec:
        out = bb.encode_prompts([long, "a photo of a square", long + " square", long])
    assert len([w for w in rec if "truncated" in str(w.message)]) == 1
    red = tok.convert_tokens_to_ids("red")
    assert [len(x) for x in out] == [28, 4 + 5, 28, 28]
    assert out[0] == [bb.t2i_id, tok.bos_token_id] + [red] * 24 + [tok.eos_token_id, bb.soi_id]
    assert out[2] == out[0]  # the trailing "square" is cut off
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a later call does not warn again
        assert bb.encode_prompts([long]) == [out[0]]
    # exactly 24 tokens is not truncated and does not warn (a fresh backbone)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ShapesBackbone(tok).encode_prompts([" ".join(["red"] * 24)])[0]) == 28


def test_codes_ids_and_image_logits(bb):
    codes = torch.tensor([[0, 5, 12]])
    assert bb.codes_to_ids(codes).tolist() == [[44, 49, 56]]
    assert torch.equal(bb.ids_to_codes(bb.codes_to_ids(codes)), codes)
    P = 10
    logits = torch.arange(2 * (P + N + 1) * 57, dtype=torch.float).view(2, P + N + 1, 57)
    model = lambda input_ids, attention_mask: SimpleNamespace(logits=logits)  # noqa: E731
    img = bb.image_logits(model, torch.zeros(2, P + N + 1, dtype=torch.long), torch.ones(2, P + N + 1))
    assert img.shape == (2, N, 13)
    assert torch.equal(img, logits[:, P : P + N, 44:57])
    assert img[0, 0, 0].item() == P * 57 + 44  # position P, vocabulary id 44 (<img_0>)


def test_decode_images(bb):
    codes = torch.zeros(2, N, dtype=torch.long)
    codes[1, 0] = 9
    images = bb.decode_images(codes)
    assert [im.size for im in images] == [(48, 48)] * 2
    assert images[0].getpixel((0, 0)) == (24, 24, 24) and images[1].getpixel((0, 0)) == (40, 90, 230)  # blue fill
