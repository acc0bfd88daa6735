"""Native MAGVIT-v2 against the published one: state-dict keys, decode, encode, LFQ bit order, strict loading.

How the goldens in ``golden/`` were produced (once, 2026-12-01; the script imports the published code, so it is not
part of the repository):

* published code: ``github:Gen-Verse/MMaDA`` at 3cdb8709635beb29f66e4e23cd66060872ac3996, files
  ``models/{modeling_magvitv2, common_modules, modeling_utils, misc}.py`` (``modeling_magvitv2.py`` and
  ``common_modules.py`` are byte-identical in ``showlab/Show-o`` at 45a5a2de01d1ebd10cd5864d29310a76476cdf23),
  copied as a package ``magref`` (empty ``__init__``) so ``models/__init__.py`` (which needs transformers) is not run.
* separate venv ``/work/venv-ref-vq``: ``pip install torch==2.13.0 diffusers==0.32.2 omegaconf jaxtyping typeguard
  einops numpy safetensors`` (torch 2.13.0+cpu, diffusers 0.32.2, Python 3.11.7); 2 intra-op threads.
* weights: ``seeded_weights.seeded_state_dict`` (this folder) over the published model's state-dict shapes,
  ``quantize.*`` buffers kept as the published constructor makes them; seed 0 for ``MAGVITv2()`` (the published,
  hard-coded sizes), seed 1 for a small model of the published classes, ``VQGANEncoder(ch=32, ch_mult=[1, 2, 2],
  num_res_blocks=[1, 2, 1])``, ``VQGANDecoder(ch=32, ch_mult=[1, 1, 2], num_res_blocks=[2, 1, 2])``, ``LFQuantizer()``
  (``TINY_SIZES``), run through ``MAGVITv2.decode_code`` / ``get_code`` unbound.
* inputs from ``torch.Generator().manual_seed(1234)``, drawn in this order: full-size codes (2, 4) (2 x 2 grid; row 0
  starts 0, 8191), images (2, 3, 32, 32) in [-1, 1]; small-model codes (2, 6) decoded with ``shape=(2, 3)``, images
  (2, 3, 16, 16); LFQ latents (3, 13, 2, 2) with ``z[0, :, 0, 0] = 0``. Recorded: ``decode_code``,
  ``encoder(images)``, ``get_code(images)``, ``LFQuantizer.get_codebook_entry`` of 8 codes and
  ``LFQuantizer()(z)["indices"]``, plus every state-dict key with its shape and dtype (``magvitv2_keys.json``).

Checked by breaking the code: reversing the LFQ bit order, dropping a ``nin_shortcut``, swapping the decoder's level
order or the Downsample padding side each fail tests here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from seeded_weights import TINY_SIZES, seeded_state_dict

from trl_htgrpo.models.magvitv2 import LFQuantizer, MAGVITv2, bits_to_codes, codes_to_bits

GOLDEN = Path(__file__).parent / "golden"
ATOL = 1e-5


@pytest.fixture(scope="module")
def gold():
    return load_file(str(GOLDEN / "magvitv2_parity.safetensors"))


@pytest.fixture(scope="module")
def published_keys():
    return json.loads((GOLDEN / "magvitv2_keys.json").read_text())


def key_table(model: MAGVITv2) -> dict:
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()}


def seeded_model(seed: int, **sizes) -> MAGVITv2:
    """Our model with the goldens' weights (built on meta: no init of 95 M parameters)."""
    with torch.device("meta"):
        model = MAGVITv2(**sizes)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("quantize.")}
    lfq = {f"quantize.{k}": v for k, v in LFQuantizer(model.quantize.codebook_dim).state_dict().items()}
    model.load_state_dict({**seeded_state_dict(shapes, seed), **lfq}, strict=True, assign=True)
    return model.eval()


@pytest.fixture(scope="module")
def full_model():
    return seeded_model(0)


# ---------------------------------------------------------------------------------------------- architecture
def test_state_dict_matches_published_keys_shapes_dtypes(published_keys):
    with torch.device("meta"):
        full = MAGVITv2()
        tiny = MAGVITv2(**TINY_SIZES)
    assert key_table(full) == published_keys["published_MAGVITv2_state_dict"]  # 382 keys
    assert key_table(tiny) == published_keys["tiny_state_dict"]
    assert len(published_keys["published_MAGVITv2_state_dict"]) == 382
    assert sum(p.numel() for p in full.parameters()) + 8192 * 13 + 13 == 95_493_513  # published state-dict size
    assert full.downsample_factor == 16 and full.codebook_size == 8192


# ---------------------------------------------------------------------------------------------- parity
def test_decode_matches_published_full_size(full_model, gold):
    with torch.no_grad():
        out = full_model.decode_code(gold["full_decode_codes"])  # 2 x 2 codes -> 32 x 32 px
    assert out.shape == (2, 3, 32, 32)
    # float32 sums in another order on another CPU: seen 1.03e-5 at a pixel of 0.47 (AMD EPYC, no AVX-512)
    torch.testing.assert_close(out, gold["full_decode_out"], atol=ATOL, rtol=ATOL)


def test_encode_matches_published_full_size(full_model, gold):
    images = gold["full_encode_images"]
    seen = []
    hook = full_model.encoder.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        with torch.no_grad():
            codes = full_model.encode(images)  # one encoder pass: its output is caught on the way
    finally:
        hook.remove()
    (latents,) = seen
    torch.testing.assert_close(latents, gold["full_encode_latents"], atol=ATOL, rtol=0)
    assert gold["full_encode_latents"].abs().min() > 10 * ATOL  # no code sits on a sign boundary
    assert torch.equal(codes, gold["full_encode_codes"])  # (2, 4)


def test_small_sizes_match_published_classes_with_the_same_arguments(gold):
    model = seeded_model(1, **TINY_SIZES)
    assert model.downsample_factor == 4
    with torch.no_grad():
        out = model.decode_code(gold["tiny_decode_codes"], shape=(2, 3))  # non-square grid
        latents = model.encoder(gold["tiny_encode_images"])
        codes = model.encode(gold["tiny_encode_images"])
    torch.testing.assert_close(out, gold["tiny_decode_out"], atol=ATOL, rtol=0)
    torch.testing.assert_close(latents, gold["tiny_encode_latents"], atol=ATOL, rtol=0)
    assert gold["tiny_encode_latents"].abs().min() > 10 * ATOL
    assert torch.equal(codes, gold["tiny_encode_codes"])  # (2, 16) from a 4 x 4 grid


# ---------------------------------------------------------------------------------------------- LFQ
def test_lfq_code_to_vector_matches_published_bit_order(gold):
    lfq = LFQuantizer(13)
    codes = gold["lfq_codes"]  # [0, 1, 2, 5, 4095, 4096, 6000, 8191]
    ours = lfq.codes_to_vectors(codes.view(1, 2, 4)).permute(0, 3, 1, 2)  # (1, 13, 2, 4) as published
    assert torch.equal(ours, gold["lfq_vectors"])
    # hand-worked: MSB first, bit 1 -> +1, bit 0 -> -1
    vec = lfq.codes_to_vectors(torch.tensor([1, 4096, 5]))
    assert vec[0].tolist() == [-1.0] * 12 + [1.0]  # 1 = bit 0 -> last channel
    assert vec[1].tolist() == [1.0] + [-1.0] * 12  # 4096 = bit 12 -> first channel
    assert vec[2].tolist() == [-1.0] * 10 + [1.0, -1.0, 1.0]  # 5 = 0b101
    # 6000 = 4096 + 1024 + 512 + 256 + 64 + 32 + 16 = 0b1011101110000
    assert codes_to_bits(torch.tensor(6000)).tolist() == [1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0]


def test_lfq_latent_to_code_matches_published(gold):
    lfq = LFQuantizer(13)
    z = gold["lfq_latents"]  # (3, 13, 2, 2), z[0, :, 0, 0] = 0
    codes = lfq.latents_to_codes(z)  # (3, 2, 2)
    assert torch.equal(codes, gold["lfq_latent_codes"][:, 0])
    assert codes[0, 0, 0] == 0  # zeros quantize to -1, bit 0


def test_lfq_tables_are_consistent_for_every_code():
    lfq = LFQuantizer(13)
    codes = torch.arange(8192)
    bits = codes_to_bits(codes)  # (8192, 13)
    assert torch.equal(bits_to_codes(bits), codes)
    assert torch.equal(lfq.embedding, bits.float() * 2 - 1)
    assert lfq.power_vals.tolist() == [2**j for j in range(12, -1, -1)]
    z = lfq.codes_to_vectors(codes).T.reshape(1, 13, 64, 128)  # every code as a latent grid
    assert torch.equal(lfq.latents_to_codes(z).flatten(), codes)


# ---------------------------------------------------------------------------------------------- loading
def write_published_layout(folder: Path, model: MAGVITv2, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or {"_class_name": "MAGVITv2",
                                                                "_diffusers_version": "0.32.2"}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "pytorch_model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def tiny_model():
    return seeded_model(1, **TINY_SIZES)


def test_from_pretrained_loads_the_published_layout_strictly(tmp_path, tiny_model, gold):
    folder = write_published_layout(tmp_path / "magvitv2", tiny_model)
    loaded = MAGVITv2.from_pretrained(folder, **TINY_SIZES)  # config.json names the class only
    assert key_table(loaded) == key_table(tiny_model)
    assert not loaded.training and loaded.quantize.power_vals.dtype == torch.long
    with torch.no_grad():
        out = loaded.decode_code(gold["tiny_decode_codes"], shape=(2, 3))
    torch.testing.assert_close(out, gold["tiny_decode_out"], atol=ATOL, rtol=0)
    # sizes may also come from config.json
    sized = write_published_layout(tmp_path / "sized", tiny_model, {"_class_name": "MAGVITv2", **TINY_SIZES})
    assert MAGVITv2.from_pretrained(sized).config["decoder_num_res_blocks"] == [2, 1, 2]


def test_from_pretrained_names_missing_unexpected_and_misshapen_keys(tmp_path, tiny_model):
    folder = write_published_layout(tmp_path / "m", tiny_model)
    sd = load_file(str(folder / "pytorch_model.safetensors"))
    weights = str(folder / "pytorch_model.safetensors")

    broken = dict(sd)
    del broken["decoder.up.1.block.0.nin_shortcut.weight"]
    save_file(broken, weights)
    with pytest.raises(ValueError, match=r"pytorch_model\.safetensors.*1 missing key\(s\): "
                                         r"decoder\.up\.1\.block\.0\.nin_shortcut\.weight"):
        MAGVITv2.from_pretrained(folder, **TINY_SIZES)

    save_file({**sd, "decoder.up.0.attn.0.q.weight": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match=r"unexpected key\(s\): decoder\.up\.0\.attn\.0\.q\.weight"):
        MAGVITv2.from_pretrained(folder, **TINY_SIZES)

    save_file(sd, weights)
    with pytest.raises(ValueError, match=r"of the wrong shape: decoder\.conv_in\.bias \(64,\) vs \(128,\)"):
        MAGVITv2.from_pretrained(folder, **{**TINY_SIZES, "ch": 64})  # sizes that do not fit the file

    (folder / "config.json").write_text(json.dumps({"_class_name": "VQModel"}))
    with pytest.raises(ValueError, match="describes a 'VQModel'"):
        MAGVITv2.from_pretrained(folder, **TINY_SIZES)

    (folder / "pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no pytorch_model\.safetensors"):
        MAGVITv2.from_pretrained(folder, **TINY_SIZES)


def test_decode_code_checks_its_input(tiny_model):
    with pytest.raises(ValueError, match="square grid"):
        tiny_model.decode_code(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 8192\)"):
        tiny_model.decode_code(torch.full((1, 4), 8192))
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny_model.encode(torch.zeros(1, 3, 10, 12))
    assert tiny_model.decode_code(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 3, 8, 8)
