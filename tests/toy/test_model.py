"""The shapes masked-diffusion model as a PreTrainedModel: save/load, checkpointing, padding, 2D positions."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, GenerationConfig

from trl_htgrpo.backbones import backbone_for
from trl_htgrpo.toy import ShapesBackbone
from trl_htgrpo.diffusion.sampler import left_pad
from trl_htgrpo.toy import ShapesDiffusionConfig, ShapesDiffusionModel
from trl_htgrpo.toy.modeling import sinusoidal_2d

N = 144


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one intra-op thread


def small_config(tok, **kw):
    kw = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, **kw}
    return ShapesDiffusionConfig(vocab_size=len(tok), **kw)


@pytest.fixture()
def model(tok):
    torch.manual_seed(0)
    return ShapesDiffusionModel(small_config(tok)).eval()


@pytest.fixture(scope="module")
def batch(tok):
    """Two left-padded prompts + random image tokens, in the backbone's layout: (2, P + N + 1)."""
    bb = ShapesBackbone(tok)
    p_ids, p_mask = left_pad(bb.encode_prompts(["a photo of a red square", "a photo of two crosses and a blue circle"]),
                             bb.pad_token_id)
    g = torch.Generator().manual_seed(0)
    image = bb.codes_to_ids(torch.randint(0, 13, (2, N), generator=g))
    ids, mask = bb.build_inputs(p_ids, p_mask, image)
    assert mask[0].tolist().count(0) == 3 and mask[1].tolist().count(0) == 0  # 6 vs 9 text tokens
    return ids, mask


def test_sinusoidal_2d_by_hand():
    emb = sinusoidal_2d(12, 32)
    assert emb.shape == (144, 32)
    # position (0, 0): sin(0) = 0 for the 8 sine channels, cos(0) = 1 for the 8 cosine ones, for row and column
    assert emb[0].tolist() == ([0.0] * 8 + [1.0] * 8) * 2
    # position (row 1, col 2) = index 14; first channel of each half: sin(row * 1), sin(col * 1)
    assert emb[14, 0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert emb[14, 16].item() == pytest.approx(math.sin(2.0), abs=1e-6)
    # the row half does not depend on the column and vice versa
    grid = emb.view(12, 12, 32)
    assert torch.equal(grid[:, 0, :16], grid[:, 7, :16]) and torch.equal(grid[0, :, 16:], grid[5, :, 16:])


def test_config_defaults_and_registration():
    cfg = ShapesDiffusionConfig()
    assert (cfg.model_type, cfg.vocab_size, cfg.image_grid, cfg.mask_token_id, cfg.tie_word_embeddings) == (
        "shapes_mdm", 57, 12, 7, False)
    assert type(AutoConfig.for_model("shapes_mdm")) is ShapesDiffusionConfig


def test_forward_shapes_and_loss(model, batch):
    ids, mask = batch
    labels = torch.full_like(ids, -100)
    labels[:, -N - 1 : -1] = ids[:, -N - 1 : -1]
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, ids.shape[1], 57)
    # loss = mean cross-entropy over the 2 * 144 labelled positions only
    sel = labels != -100
    expected = F.cross_entropy(out.logits[sel], labels[sel])
    assert sel.sum() == 288 and torch.allclose(out.loss, expected, atol=1e-6)
    # random init (std 0.02): logits are near uniform, so the loss is near log(57) = 4.04
    assert abs(out.loss.item() - math.log(57)) < 0.1


def test_bad_sequence_length_raises(model):
    with pytest.raises(ValueError, match=r"sequence length 145 must be at least N \+ 2 = 146"):
        model(torch.zeros(1, N + 1, dtype=torch.long))
    # a prompt of 65 tokens (L = 65 + 144 + 1) exceeds max_text_positions = 64
    with pytest.raises(ValueError, match=r"prompt of 65 tokens exceeds max_text_positions=64"):
        model(torch.zeros(1, 65 + N + 1, dtype=torch.long))


def test_left_padding_does_not_change_logits(model):
    # the same prompt with 0 or 5 pad tokens in front: identical logits at the real positions
    ids = torch.randint(8, 40, (1, 6 + N + 1))
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 5, dtype=torch.long), torch.ones_like(ids)], dim=1)
    with torch.no_grad():
        a = model(ids, attention_mask=torch.ones_like(ids)).logits
        b = model(padded, attention_mask=mask).logits[:, 5:]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_save_and_auto_load_give_equal_logits(model, batch, tmp_path):
    ids, mask = batch
    model.save_pretrained(tmp_path)
    for auto in (AutoModel, AutoModelForMaskedLM):
        loaded = auto.from_pretrained(tmp_path).eval()
        assert type(loaded) is ShapesDiffusionModel
        fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "max_position_embeddings", "image_grid", "mask_token_id", "pad_token_id", "tie_word_embeddings")
        assert [getattr(loaded.config, f) for f in fields] == [57, 32, 2, 2, 64, 256, 12, 7, 0, False]
        assert torch.equal(loaded.pos2d, sinusoidal_2d(12, 32))  # non-persistent buffer rebuilt
        with torch.no_grad():
            assert torch.equal(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


def test_generation_config(model, tmp_path):
    gc = model.generation_config
    assert isinstance(gc, GenerationConfig)
    assert (gc.pad_token_id, gc.bos_token_id, gc.eos_token_id) == (0, 2, 3)
    model.save_pretrained(tmp_path)
    gc2 = AutoModel.from_pretrained(tmp_path).generation_config
    assert (gc2.pad_token_id, gc2.bos_token_id, gc2.eos_token_id) == (0, 2, 3)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_gradient_checkpointing_gives_the_same_gradients(tok, batch):
    ids, mask = batch
    torch.manual_seed(1)
    model = ShapesDiffusionModel(small_config(tok)).train()
    labels = torch.where(torch.rand(ids.shape, generator=torch.Generator().manual_seed(0)) < 0.5, ids, -100)
    calls = []
    model.blocks[0].qkv.register_forward_hook(lambda *a: calls.append(1))

    def grads():
        model.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    assert len(calls) == 1
    model.gradient_checkpointing_enable()
    assert all(b.gradient_checkpointing for b in model.blocks)
    calls.clear()
    ckpt = grads()
    assert len(calls) == 2  # the block was recomputed in the backward pass
    assert plain.keys() == ckpt.keys() and len(plain) == 2 + 2 * 14 + 3  # embed, pos, 2 blocks, ln_f, lm_head
    for name in plain:
        assert plain[name].abs().max() > 0, name
        assert torch.allclose(plain[name], ckpt[name], atol=1e-6, rtol=0), name


def test_padded_positions_are_ignored(model, batch):
    ids, mask = batch
    assert (mask == 0).sum() == 3
    changed = torch.where(mask.bool(), ids, torch.randint(8, 44, ids.shape, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(changed, ids)
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).logits
        out = model(changed, attention_mask=mask).logits
        unmasked = model(changed).logits  # without the attention mask the pad ids do leak
    keep = mask.bool()
    assert torch.allclose(out[keep], ref[keep], atol=1e-6, rtol=0)
    assert (unmasked[keep] - ref[keep]).abs().max() > 1e-4
    # a full mask of ones is the same as no mask
    assert torch.allclose(model(ids[1:], attention_mask=mask[1:]).logits, model(ids[1:]).logits, atol=1e-6)


def test_2d_positions_break_permutation_equivariance_of_the_image(model, batch):
    ids, mask = batch
    L = ids.shape[1]
    img = torch.arange(L - N - 1, L - 1)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(0))
    permuted = ids.clone()
    permuted[:, img] = ids[:, img][:, perm]
    with torch.no_grad():
        model.pos.weight.zero_()  # remove the 1D positions and the convolution: only pos2d is position-aware
        for b in model.blocks:
            b.conv.weight.zero_()
            b.conv.bias.zero_()

        def image_logits(x):
            return model(x, attention_mask=mask).logits[:, img]

        ref, out = image_logits(ids), image_logits(permuted)
        assert (out - ref[:, perm]).abs().max() > 1e-3  # 2D positions matter
        model.pos2d.zero_()
        ref, out = image_logits(ids), image_logits(permuted)
        assert torch.allclose(out, ref[:, perm], atol=1e-5)  # without them the image block is a set


def test_conv_mixes_neighbouring_tiles_only(model, batch):
    ids, mask = batch
    L = ids.shape[1]
    with torch.no_grad():
        for b in model.blocks:  # no attention mixing: zero the attention output projection
            b.proj.weight.zero_()
            b.proj.bias.zero_()
        changed = ids.clone()
        tile = L - N - 1 + 5 * 12 + 5  # tile (5, 5)
        changed[:, tile] = ids[:, tile] + 1 if ids[0, tile] < 56 else ids[:, tile] - 1
        diff = (model(changed, attention_mask=mask).logits - model(ids, attention_mask=mask).logits).abs().amax(-1)
    moved = {(int(i) - (L - N - 1)) for i in torch.nonzero(diff[0] > 1e-6).flatten()}
    # 2 layers of a 3x3 convolution: a 5x5 neighbourhood of (5, 5), rows/cols 3..7
    assert moved == {r * 12 + c for r in range(3, 8) for c in range(3, 8)}


def test_backbone_for_model(model, tok):
    assert isinstance(backbone_for(model, tok), ShapesBackbone)
    with pytest.raises(ValueError, match=r"config.model_type=None; supported model types: \[.*'shapes_mdm'.*\]"):
        backbone_for(torch.nn.Linear(1, 1), tok)
