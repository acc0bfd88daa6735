"""VQ decoder registry: Lumina-DiMOO's diffusers VQModel path, MAGVIT-v2 through the loader, pixel conversions,
image-size checks and finding a decoder for a checkpoint.

The VQModel reference is the call of Lumina-DiMOO's ``utils/image_utils.py: decode_vq_to_image`` (Alpha-VLLM/Lumina-DiMOO
at 81344e60545ae8d70f11039d3450717d974f831b), written out here for each image of a batch, as that function does with
batch 1: token ids minus 126356, ``vqvae.decode(codes.view(1, h, w), force_not_quantize=True, shape=(1, h, w,
latent_channels)).sample.clip(0, 1)``, then ``VaeImageProcessor(vae_scale_factor=16, do_normalize=False)
.postprocess(..., output_type="pil")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from seeded_weights import TINY_SIZES, seeded_state_dict

from trl_htgrpo.models import (
    VQ_FAMILIES,
    MAGVITv2,
    VQSource,
    find_vq_decoder,
    load_vq_decoder,
    lumina_dimoo_to_uint8,
    mmada_to_uint8,
    register_vq_family,
    uint8_to_pil,
    wrap_vq_decoder,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors

DIMOO_OFFSET = 126356  # Lumina-DiMOO image token id = code + 126356


def tiny_vqmodel(lookup_from_codebook: bool = True):
    from diffusers import VQModel

    torch.manual_seed(0)
    return VQModel(  # 5 levels like the released vqvae: f = 16; 8 channels, 64 codes of 4 dims
        block_out_channels=(8,) * 5, down_block_types=("DownEncoderBlock2D",) * 5,
        up_block_types=("UpDecoderBlock2D",) * 5, layers_per_block=1, latent_channels=4, num_vq_embeddings=64,
        norm_num_groups=4, mid_block_add_attention=False, lookup_from_codebook=lookup_from_codebook, sample_size=32,
    ).eval()


@pytest.fixture(scope="module")
def dimoo_checkpoint(tmp_path_factory) -> Path:
    """A Lumina-DiMOO-style folder: an LLaDA config.json at the root, the VQModel in vqvae/."""
    root = tmp_path_factory.mktemp("lumina-dimoo")
    (root / "config.json").write_text(json.dumps({"model_type": "llada",
                                                  "architectures": ["LLaDAForMultiModalGeneration"]}))
    tiny_vqmodel().save_pretrained(root / "vqvae")
    return root


@pytest.fixture(scope="module")
def magvit_folder(tmp_path_factory) -> Path:
    """A small MAGVIT-v2 in the published layout; config.json also carries the (non-published) sizes."""
    folder = tmp_path_factory.mktemp("magvitv2")
    with torch.device("meta"):
        model = MAGVITv2(**TINY_SIZES)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("quantize.")}
    sd = {**seeded_state_dict(shapes, 1), "quantize.embedding": (
        ((torch.arange(8192)[:, None] >> torch.arange(12, -1, -1)) & 1).float() * 2 - 1),
        "quantize.power_vals": 2 ** torch.arange(12, -1, -1)}
    save_file(sd, str(folder / "pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "MAGVITv2", **TINY_SIZES}))
    return folder


# ---------------------------------------------------------------------------------------------- VQModel (DiMOO)
def test_vqmodel_decode_equals_lumina_dimoo_call(dimoo_checkpoint):
    from diffusers import VQModel
    from diffusers.image_processor import VaeImageProcessor

    source = find_vq_decoder(dimoo_checkpoint)
    assert source == VQSource("vqmodel", str(dimoo_checkpoint), "vqvae")
    vq = load_vq_decoder(source.kind, source.name_or_path, subfolder=source.subfolder)
    assert (vq.codebook_size, vq.downsample_factor, vq.value_range) == (64, 16, (0.0, 1.0))

    g = torch.Generator().manual_seed(0)
    B, h, w = 2, 2, 3
    codes = torch.randint(0, 64, (B, h, w), generator=g)
    images = vq.decode(codes)  # (B, 3, 32, 48)
    assert images.shape == (B, 3, h * 16, w * 16) and images.dtype == torch.float32

    ref_model = VQModel.from_pretrained(str(dimoo_checkpoint), subfolder="vqvae")
    scale = 2 ** (len(ref_model.config.block_out_channels) - 1)
    proc = VaeImageProcessor(vae_scale_factor=scale, do_normalize=False)
    for b in range(B):  # decode_vq_to_image, one image at a time
        vq_codes = (codes[b] + DIMOO_OFFSET).view(1, h * w)
        latents = (vq_codes.view(1, h, w) - DIMOO_OFFSET).long()
        with torch.no_grad():
            raw = ref_model.decode(latents, force_not_quantize=True,
                                   shape=(1, h, w, ref_model.config.latent_channels)).sample
        ours = vq.decode(codes[b : b + 1])
        assert torch.equal(ours, raw)
        ref_pil = proc.postprocess(raw.clip(0, 1), output_type="pil")[0]
        assert np.array_equal(np.asarray(ref_pil), vq.to_uint8(ours)[0].numpy())
        # a batch changes only the convolutions' rounding (about 1e-5 here)
        torch.testing.assert_close(images[b : b + 1], raw, atol=1e-4, rtol=0)
    # the raw output leaves [0, 1] with random weights: the conversion clips
    assert images.min() < 0 or images.max() > 1
    assert [im.size for im in vq.to_pil(codes)] == [(48, 32)] * B


def test_vqmodel_batched_decode_equals_vqmodel_decode_exactly(dimoo_checkpoint):
    vq = load_vq_decoder("vqmodel", dimoo_checkpoint, subfolder="vqvae")
    codes = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))  # (B, N): square 4 x 4
    with torch.no_grad():
        ref = vq.model.decode(codes.view(3, 4, 4), force_not_quantize=True, shape=(3, 4, 4, 4)).sample
    assert torch.equal(vq.decode(codes), ref)


def test_vqmodel_without_codebook_lookup_is_refused():
    with pytest.raises(ValueError, match="lookup_from_codebook=False"):
        wrap_vq_decoder("vqmodel", tiny_vqmodel(lookup_from_codebook=False))


# ---------------------------------------------------------------------------------------------- MAGVIT-v2 (MMaDA)
def test_magvitv2_through_the_loader(magvit_folder):
    assert find_vq_decoder(None, magvit_folder) == VQSource("magvitv2", str(magvit_folder))
    vq = load_vq_decoder("magvitv2", magvit_folder, image_sizes="any", dtype=torch.float32)
    direct = MAGVITv2.from_pretrained(magvit_folder)
    assert (vq.codebook_size, vq.downsample_factor, vq.value_range) == (8192, 4, (-1.0, 1.0))
    codes = torch.randint(0, 8192, (2, 2, 3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = direct.decode_code(codes.view(2, 6), shape=(2, 3))
    assert torch.equal(vq.decode(codes), ref)  # (2, 3, 8, 12)
    square = codes[:, :, :2].reshape(2, 4)
    with torch.no_grad():
        assert torch.equal(vq.decode(square), direct.decode_code(square))  # (B, N) -> square grid as published
    assert not any(p.requires_grad for p in vq.model.parameters())


def test_magvitv2_decode_checks_codes(magvit_folder):
    vq = load_vq_decoder("magvitv2", magvit_folder, image_sizes="any")
    with pytest.raises(ValueError, match=r"\[0, 8192\).*image offset"):
        vq.decode(torch.full((1, 4), 126349 + 5))  # token ids, not codes
    with pytest.raises(ValueError, match="square grid"):
        vq.decode(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(TypeError, match="integers"):
        vq.decode(torch.zeros(1, 4))


# ---------------------------------------------------------------------------------------------- image sizes
def test_image_sizes_magvitv2_family(magvit_folder):
    vq = load_vq_decoder("magvitv2", magvit_folder)  # family sizes: 256x256, 512x512 (tiny f = 4)
    assert vq.check_image_size(512, 512) == (128, 128)
    for bad in [(500, 500), (768, 768), (512, 256)]:
        with pytest.raises(ValueError, match=r"cannot produce .*allowed sizes: 256x256, 512x512"):
            vq.check_image_size(*bad)
    with pytest.raises(ValueError, match="allowed sizes: 256x256, 512x512"):
        vq.decode(torch.zeros(1, 2, 2, dtype=torch.long))  # an 8 x 8 image
    custom = load_vq_decoder("magvitv2", magvit_folder, image_sizes=[(8, 12)])
    assert custom.decode(torch.zeros(1, 2, 3, dtype=torch.long)).shape == (1, 3, 8, 12)
    with pytest.raises(ValueError, match="not positive multiples of the decoder's factor 4"):
        load_vq_decoder("magvitv2", magvit_folder, image_sizes=[(10, 12)])


def test_image_sizes_vqmodel_family(dimoo_checkpoint):
    vq = load_vq_decoder("vqmodel", dimoo_checkpoint, subfolder="vqvae")
    assert vq.check_image_size(768, 1536) == (48, 96)  # DiMOO README's size
    assert vq.check_image_size(1024, 1024) == (64, 64)  # DiMOO's default
    for bad in [(770, 1536), (1024, 1000), (0, 16)]:
        with pytest.raises(ValueError, match="allowed sizes: any height and width that are positive multiples of 16"):
            vq.check_image_size(*bad)


# ---------------------------------------------------------------------------------------------- pixel conversion
def test_mmada_pixels_truncate_hand_worked():
    x = torch.tensor([-2.0, -1.0, -0.99, 0.0, 0.5, 0.999, 1.0, 3.0])
    # (x+1)/2 clamped: 0, 0, 0.005, 0.5, 0.75, 0.9995, 1, 1; * 255: 0, 0, 1.275, 127.5, 191.25, 254.87, 255, 255
    expected = [0, 0, 1, 127, 191, 254, 255, 255]  # truncated (rounding would give 128 and 255 for 0.0 and 0.999)
    images = x.view(1, 1, 1, 8).expand(1, 3, 1, 8)
    pixels = mmada_to_uint8(images)
    assert pixels.shape == (1, 1, 8, 3) and pixels.dtype == torch.uint8
    assert pixels[0, 0, :, 0].tolist() == expected


def test_lumina_dimoo_pixels_round_hand_worked():
    x = torch.tensor([-0.5, 0.0, 0.001, 0.003, 0.5, 0.75, 0.999, 1.5])
    # clip then * 255: 0, 0, 0.255, 0.765, 127.5, 191.25, 254.745, 255; rounded half to even
    expected = [0, 0, 0, 1, 128, 191, 255, 255]
    pixels = lumina_dimoo_to_uint8(x.view(1, 1, 1, 8).expand(1, 3, 1, 8))
    assert pixels[0, 0, :, 0].tolist() == expected


def test_pixel_conversions_equal_the_published_lines_on_random_values():
    from diffusers.image_processor import VaeImageProcessor

    images = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.5
    # MMaDA inference_t2i.py
    ref = torch.clamp((images + 1.0) / 2.0, min=0.0, max=1.0)
    ref *= 255.0
    ref = ref.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
    assert np.array_equal(mmada_to_uint8(images).numpy(), ref)
    # Lumina-DiMOO decode_vq_to_image
    pil = VaeImageProcessor(vae_scale_factor=16, do_normalize=False).postprocess(images.clip(0, 1), output_type="pil")
    assert np.array_equal(lumina_dimoo_to_uint8(images).numpy(), np.stack([np.asarray(p) for p in pil]))
    assert [p.size for p in uint8_to_pil(mmada_to_uint8(images))] == [(8, 8), (8, 8)]


# ---------------------------------------------------------------------------------------------- finding / registry
def test_find_vq_decoder_names_the_flag_when_none_is_found(tmp_path, magvit_folder, dimoo_checkpoint):
    mmada = tmp_path / "mmada"
    mmada.mkdir()
    (mmada / "config.json").write_text(json.dumps({"model_type": "mmada", "architectures": ["MMadaModelLM"]}))
    with pytest.raises(FileNotFoundError, match=r"--vq_model_name_or_path showlab/magvitv2"):
        find_vq_decoder(mmada)
    assert find_vq_decoder(mmada, magvit_folder) == VQSource("magvitv2", str(magvit_folder))  # the flag wins
    assert find_vq_decoder(mmada, dimoo_checkpoint).subfolder == "vqvae"
    assert find_vq_decoder(None, dimoo_checkpoint / "vqvae") == VQSource("vqmodel", str(dimoo_checkpoint / "vqvae"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--vq_model_name_or_path .*empty: no VQ decoder there"):
        find_vq_decoder(mmada, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="pass --vq_model_name_or_path"):
        find_vq_decoder(None)


def test_registry_rejects_unknown_and_duplicate_kinds():
    with pytest.raises(ValueError, match=r"unknown VQ decoder kind 'vqgan'; registered: \['magvitv2', 'vqmodel'\]"):
        load_vq_decoder("vqgan", "anywhere")
    with pytest.raises(ValueError, match="already registered"):
        register_vq_family("magvitv2", VQ_FAMILIES["magvitv2"])
