"""Tile codec: codes <-> PIL images are exact inverses; bad inputs raise with helpful messages."""

import numpy as np
import pytest
import torch
from PIL import Image

from trl_htgrpo.toy.codec import check_image, decode_codes, encode_image
from trl_htgrpo.toy.palette import (
    CODEBOOK_SIZE, COLORS, GRID, IMAGE_PX, PALETTE, TILE_PX, code_color, edge_code, fill_code,
)


def test_palette_constants():
    # 12 tiles of 4 px = 48 px; 1 background + 6 colours x (fill, edge) = 13 codes.
    assert (GRID, TILE_PX, IMAGE_PX, CODEBOOK_SIZE) == (12, 4, 48, 13)
    assert PALETTE.shape == (13, 3) and PALETTE.dtype == np.uint8
    # All 13 colours are distinct (otherwise the codec could not be an inverse).
    assert len({tuple(c) for c in PALETTE}) == 13
    # red fill (220, 40, 40); its edge is int(0.6 * v): (132, 24, 24).
    assert tuple(PALETTE[fill_code("red")]) == (220, 40, 40)
    assert tuple(PALETTE[edge_code("red")]) == (132, 24, 24)
    assert (fill_code("blue"), edge_code("blue")) == (9, 10)  # blue is colour 4: 1 + 8, 2 + 8
    assert [code_color(c) for c in (0, 1, 2, 11, 12)] == [None, "red", "red", "purple", "purple"]
    assert all(code_color(fill_code(c)) == code_color(edge_code(c)) == c for c in COLORS)


@pytest.mark.parametrize("seed", range(6))
def test_decode_then_encode_is_exact_inverse(seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, CODEBOOK_SIZE, size=(GRID, GRID))
    image = decode_codes(codes)
    assert image.mode == "RGB" and image.size == (48, 48)
    out = encode_image(image)
    assert out.shape == (12, 12)
    np.testing.assert_array_equal(out, codes)


def test_every_code_round_trips_and_inputs_may_be_flat_list_or_tensor():
    codes = np.arange(GRID * GRID) % CODEBOOK_SIZE  # every code 0..12 appears
    for given in (codes, codes.tolist(), torch.tensor(codes), codes.reshape(GRID, GRID)):
        np.testing.assert_array_equal(encode_image(decode_codes(given)), codes.reshape(GRID, GRID))


def test_decode_paints_tiles_of_tile_px():
    codes = np.zeros((GRID, GRID), dtype=np.int64)
    codes[0, 1] = 5  # yellow fill (235, 220, 40)
    px = np.asarray(decode_codes(codes))
    assert px.shape == (48, 48, 3)
    # tile (row 0, col 1) covers pixel rows 0..3 and pixel columns 4..7
    assert (px[0:4, 4:8] == (235, 220, 40)).all()
    assert (px[0:4, 0:4] == (24, 24, 24)).all() and (px[0:4, 8:12] == (24, 24, 24)).all()
    assert (px[4:8, 4:8] == (24, 24, 24)).all()


def test_encode_snaps_mildly_perturbed_pixels_to_the_palette():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, CODEBOOK_SIZE, size=(GRID, GRID))
    px = np.asarray(decode_codes(codes)).astype(np.int64)
    # palette entries are >= 49.5 apart in RGB, so +-12 per channel (<= 20.8 in L2) stays nearest
    noisy = np.clip(px + rng.integers(-12, 13, size=px.shape), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(encode_image(Image.fromarray(noisy, mode="RGB")), codes)


@pytest.mark.parametrize("size", [(47, 48), (48, 47), (96, 96), (12, 12)])
def test_wrong_image_size_raises(size):
    with pytest.raises(ValueError, match=r"48x48 px \(12x12 tiles of 4 px\), got %dx%d" % size):
        encode_image(Image.new("RGB", size))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_wrong_image_mode_raises(mode):
    with pytest.raises(ValueError, match=rf"mode 'RGB', got mode '{mode}'"):
        encode_image(Image.new(mode, (48, 48)))
    # The same image converted to RGB is accepted.
    assert encode_image(Image.new(mode, (48, 48)).convert("RGB")).shape == (12, 12)


def test_non_pil_image_raises_type_error():
    with pytest.raises(TypeError, match="PIL.Image.Image, got ndarray"):
        check_image(np.zeros((48, 48, 3), dtype=np.uint8))


@pytest.mark.parametrize("bad", [13, -1, 100])
def test_codes_out_of_range_raise(bad):
    codes = np.zeros(GRID * GRID, dtype=np.int64)
    codes[7] = bad
    with pytest.raises(ValueError, match=r"\[0, 13\)"):
        decode_codes(codes)


@pytest.mark.parametrize("n", [143, 145, 1])
def test_wrong_number_of_codes_raises(n):
    with pytest.raises(ValueError, match=r"codes must have shape \(144,\) or \(12, 12\), got \(%d,\)" % n):
        decode_codes(np.zeros(n, dtype=np.int64))
