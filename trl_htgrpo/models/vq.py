"""The VQ image decoders of the backbones, by name: load one, decode codes to images, convert images to pixels.

A family ("kind") fixes how its decoder is loaded and called, the value range of what it returns, the image sizes
it is used at and how the published inference code turns its output into uint8 pixels:

``magvitv2``  MMaDA's decoder, Show-o's MAGVIT-v2 (``showlab/magvitv2``; the MMaDA checkpoint has none), native in
             ``magvitv2.py``. Output nominally in [-1, 1]. Pixels as MMaDA's ``inference_t2i.py``:
             ``clamp((x + 1) / 2, 0, 1) * 255`` then ``.astype(np.uint8)``, i.e. truncated. Sizes: square 256 or 512
             (Show-o's two resolutions with these weights; MMaDA generates 512, 32 x 32 codes).
``vqmodel``   Lumina-DiMOO's decoder, diffusers ``VQModel`` (``subfolder="vqvae"`` of its checkpoint). Output nominally
             in [0, 1]. Pixels as ``utils/image_utils.py: decode_vq_to_image``: ``.clip(0, 1)``, then
             ``VaeImageProcessor(do_normalize=False).postprocess`` = ``(x * 255).round().astype("uint8")``, i.e.
             rounded half to even. Sizes: any H x W with H, W multiples of 16 (its README runs 1024 x 1024 and
             768 x 1536; the factor is 2 ** (len(block_out_channels) - 1)).

Decoders take codebook indices, not token ids: the backbone adapter subtracts its image offset (MMaDA 126349,
Lumina-DiMOO 126356, which ``decode_vq_to_image`` subtracts before ``VQModel.decode``). ``decode`` returns the raw
decoder output (no clamping); ``to_uint8`` applies the family's published conversion. MMaDA's ``inference_t2i.py``
also clamps the codes to [0, 8191] before ``decode_code``; here out-of-range codes raise (the adapter clamps). Both
published scripts keep the decoder in fp32 (``from_pretrained`` without a dtype), the default here too.

Lumina-DiMOO's call (``utils/image_utils.py: decode_vq_to_image``, batch 1 there)::

    vqvae.decode(codes.view(B, h, w), force_not_quantize=True, shape=(B, h, w, vqvae.config.latent_channels)).sample

``force_not_quantize=True`` with the config's ``lookup_from_codebook=True`` reads the codebook rows; a VQModel
without ``lookup_from_codebook`` would take the integer codes as latents, so loading one is refused here.

Validated: the VQModel path equals that call and DiMOO's pixel conversion on a tiny random VQModel (diffusers
0.42.1); MAGVIT-v2 equals the published code (``tests/models/test_magvitv2.py``). Not validated: the released weights.

Shapes: B batch, h x w code grid, N = h * w, f = downsampling factor (16 for both released decoders).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from .magvitv2 import MAGVITv2, _resolve

#: the command-line flag (``HTGRPOConfig`` field) that points at a VQ decoder outside the model checkpoint
VQ_FLAG = "--vq_model_name_or_path"


# ---------------------------------------------------------------------------------------------- pixel conversions
def mmada_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float, nominally in [-1, 1] -> (B, H, W, 3) uint8, as MMaDA's ``inference_t2i.py``.

    ``clamp((x + 1) / 2, 0, 1) * 255`` in fp32, then ``.astype(np.uint8)``, which truncates:

    >>> mmada_to_uint8(torch.tensor([-1.0, 0.0, 0.999, 1.0, 2.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5))[0, 0, :, 0]
    tensor([  0, 127, 254, 255, 255], dtype=torch.uint8)
    """
    _check_images(images)
    x = torch.clamp((images.detach().float() + 1.0) / 2.0, min=0.0, max=1.0) * 255.0
    return x.permute(0, 2, 3, 1).cpu().to(torch.uint8)  # in [0, 255]: the cast truncates, as numpy's astype


def lumina_dimoo_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float, nominally in [0, 1] -> (B, H, W, 3) uint8, as Lumina-DiMOO's ``decode_vq_to_image``.

    ``.clip(0, 1)``, then diffusers' ``VaeImageProcessor(do_normalize=False).postprocess(..., "pil")``:
    ``(x * 255).round().astype("uint8")`` in fp32, rounding half to even:

    >>> lumina_dimoo_to_uint8(torch.tensor([-0.1, 0.001, 0.003, 0.5, 1.2]).view(1, 1, 1, 5).expand(1, 3, 1, 5))[0, 0, :, 0]
    tensor([  0,   0,   1, 128, 255], dtype=torch.uint8)
    """
    _check_images(images)
    x = images.detach().clip(0, 1).float() * 255.0
    return x.round().permute(0, 2, 3, 1).cpu().to(torch.uint8)


def uint8_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, H, W, 3) uint8 -> PIL RGB images."""
    if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != torch.uint8:
        raise ValueError(f"expected (B, H, W, 3) uint8 pixels, got {tuple(pixels.shape)} {pixels.dtype}")
    return [Image.fromarray(np.ascontiguousarray(a)) for a in pixels.numpy()]


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")


# ---------------------------------------------------------------------------------------------- families
ImageSizes = tuple[tuple[int, int], ...] | None  # allowed (height, width) in pixels; None: any multiple of f


@dataclass(frozen=True)
class VQFamily:
    """How one kind of VQ decoder is loaded and called (an entry of ``VQ_FAMILIES``).

    load: (name_or_path, subfolder, dtype) -> the model, in eval mode.
    decode: (model, codes (B, h, w) long) -> images (B, 3, h*f, w*f) float.
    check: (model) -> None, raises if the loaded model cannot decode codes this way.
    codebook_size, downsample_factor: read from the loaded model.
    value_range: nominal range of ``decode``'s output; to_uint8: the published pixel conversion.
    image_sizes: the sizes the decoder is used at (None: any multiple of f).
    """

    load: Callable[[str, str | None, torch.dtype | None], nn.Module]
    decode: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    codebook_size: Callable[[nn.Module], int]
    downsample_factor: Callable[[nn.Module], int]
    value_range: tuple[float, float]
    to_uint8: Callable[[torch.Tensor], torch.Tensor]
    image_sizes: ImageSizes
    check: Callable[[nn.Module], None] = lambda model: None


VQ_FAMILIES: dict[str, VQFamily] = {}


def register_vq_family(kind: str, family: VQFamily, exist_ok: bool = False) -> None:
    """Make ``kind`` loadable by ``load_vq_decoder`` / ``wrap_vq_decoder``."""
    if kind in VQ_FAMILIES and not exist_ok:
        raise ValueError(f"VQ family {kind!r} is already registered")
    VQ_FAMILIES[kind] = family


def _family(kind: str) -> VQFamily:
    if kind not in VQ_FAMILIES:
        raise ValueError(f"unknown VQ decoder kind {kind!r}; registered: {sorted(VQ_FAMILIES)}")
    return VQ_FAMILIES[kind]


# --- magvitv2 (MMaDA)
def _load_magvitv2(name_or_path: str, subfolder: str | None, dtype: torch.dtype | None) -> nn.Module:
    if subfolder:
        if not os.path.isdir(name_or_path):
            raise ValueError("a MAGVIT-v2 in a subfolder of a hub repo is not supported; download it and pass the "
                             "local folder")
        name_or_path = os.path.join(name_or_path, subfolder)
    model = MAGVITv2.from_pretrained(name_or_path)
    return model.to(dtype) if dtype is not None else model


register_vq_family("magvitv2", VQFamily(
    load=_load_magvitv2,
    decode=lambda model, codes: model.decode_code(codes.flatten(1), shape=tuple(codes.shape[1:])),
    codebook_size=lambda model: model.codebook_size,
    downsample_factor=lambda model: model.downsample_factor,
    value_range=(-1.0, 1.0),
    to_uint8=mmada_to_uint8,
    image_sizes=((256, 256), (512, 512)),  # Show-o at 256 and 512; MMaDA at 512 (32 x 32 codes)
))


# --- vqmodel (Lumina-DiMOO)
def _load_vqmodel(name_or_path: str, subfolder: str | None, dtype: torch.dtype | None) -> nn.Module:
    try:
        from diffusers import VQModel
    except ImportError as e:  # a dependency of this package, but a broken install should say what is missing
        raise ImportError("the 'vqmodel' decoder (Lumina-DiMOO) needs diffusers: pip install diffusers") from e
    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    return VQModel.from_pretrained(name_or_path, subfolder=subfolder, **kwargs).eval()


def _decode_vqmodel(model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    B, h, w = codes.shape
    C = model.config.vq_embed_dim or model.config.latent_channels  # DiMOO passes latent_channels (the same there)
    return model.decode(codes, force_not_quantize=True, shape=(B, h, w, C)).sample


def _check_vqmodel(model: nn.Module) -> None:
    if not getattr(model.config, "lookup_from_codebook", False):
        raise ValueError("this VQModel has lookup_from_codebook=False: decode(force_not_quantize=True) would take "
                         "the codes as latents instead of looking them up; Lumina-DiMOO's vqvae sets it to true")


register_vq_family("vqmodel", VQFamily(
    load=_load_vqmodel,
    decode=_decode_vqmodel,
    codebook_size=lambda model: model.config.num_vq_embeddings,
    downsample_factor=lambda model: 2 ** (len(model.config.block_out_channels) - 1),
    value_range=(0.0, 1.0),
    to_uint8=lumina_dimoo_to_uint8,
    image_sizes=None,  # DiMOO generates any H x W with H, W multiples of 16 (README: 1024 x 1024, 768 x 1536)
    check=_check_vqmodel,
))


# ---------------------------------------------------------------------------------------------- the decoder
class VQDecoder:
    """A loaded VQ decoder with its family's conventions: ``decode``, ``to_uint8``, ``to_pil``, size checks.

    Attributes: kind, model, value_range, codebook_size, downsample_factor (f), image_sizes (allowed (H, W) in
    pixels, None: any multiple of f).
    """

    def __init__(self, kind: str, model: nn.Module, image_sizes: Sequence[tuple[int, int]] | None | str = "family"):
        family = _family(kind)
        family.check(model)
        self.kind = kind
        self.model = model
        self.family = family
        self.value_range = family.value_range
        self.codebook_size = int(family.codebook_size(model))
        self.downsample_factor = int(family.downsample_factor(model))
        if image_sizes == "family":
            image_sizes = family.image_sizes
        elif image_sizes == "any":
            image_sizes = None
        elif isinstance(image_sizes, str):
            raise ValueError(f"image_sizes must be a list of (height, width), 'family' or 'any', got {image_sizes!r}")
        if image_sizes is not None:
            image_sizes = tuple((int(h), int(w)) for h, w in image_sizes)
            f = self.downsample_factor
            bad = [s for s in image_sizes if s[0] % f or s[1] % f or min(s) <= 0]
            if bad:
                raise ValueError(f"image sizes {bad} are not positive multiples of the decoder's factor {f}")
        self.image_sizes: ImageSizes = image_sizes

    def allowed_sizes(self) -> str:
        """The allowed image sizes, in words (for error messages)."""
        if self.image_sizes is None:
            return f"any height and width that are positive multiples of {self.downsample_factor}"
        return ", ".join(f"{h}x{w}" for h, w in self.image_sizes)

    def check_image_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) in pixels -> the code grid (h, w); ``ValueError`` naming the allowed sizes otherwise."""
        f = self.downsample_factor
        ok = height > 0 and width > 0 and height % f == 0 and width % f == 0
        if ok and self.image_sizes is not None:
            ok = (height, width) in self.image_sizes
        if not ok:
            raise ValueError(f"the {self.kind} decoder cannot produce {height}x{width} images (one code covers "
                             f"{f}x{f} pixels); allowed sizes: {self.allowed_sizes()}")
        return height // f, width // f

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N) (square grid) or (B, h, w), long in [0, codebook_size) -> images (B, 3, h*f, w*f) float.

        The raw decoder output, nominally in ``value_range``; no gradient.
        """
        if codes.ndim == 2:
            B, N = codes.shape
            side = math.isqrt(N)
            if side * side != N:
                raise ValueError(f"{N} codes per image do not form a square grid; pass codes of shape (B, h, w)")
            codes = codes.reshape(B, side, side)
        if codes.ndim != 3:
            raise ValueError(f"codes must have shape (B, N) or (B, h, w), got {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise TypeError(f"codes must be integers, got {codes.dtype}")
        B, h, w = codes.shape
        f = self.downsample_factor
        self.check_image_size(h * f, w * f)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, "
                             f"{int(codes.max())}] (token ids? the backbone subtracts its image offset)")
        with torch.no_grad():
            images = self.family.decode(self.model, codes.long().to(self.device))  # (B, 3, h*f, w*f)
        if images.shape != (B, 3, h * f, w * f):
            raise RuntimeError(f"the {self.kind} decoder returned {tuple(images.shape)}, expected "
                               f"{(B, 3, h * f, w * f)}")
        return images

    __call__ = decode

    def to_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) decoder output -> (B, H, W, 3) uint8 by the family's published conversion."""
        return self.family.to_uint8(images)

    def to_pil(self, codes: torch.Tensor) -> list[Image.Image]:
        """codes -> PIL RGB images: ``decode``, then ``to_uint8``."""
        return uint8_to_pil(self.to_uint8(self.decode(codes)))

    def __repr__(self) -> str:
        return (f"VQDecoder(kind={self.kind!r}, codebook_size={self.codebook_size}, f={self.downsample_factor}, "
                f"value_range={self.value_range}, sizes={self.allowed_sizes()!r})")


def wrap_vq_decoder(kind: str, model: nn.Module,
                    image_sizes: Sequence[tuple[int, int]] | Literal["family", "any"] = "family") -> VQDecoder:
    """A ``VQDecoder`` around an already loaded model of ``kind`` (e.g. a ``VQModel`` built in memory)."""
    return VQDecoder(kind, model.eval(), image_sizes)


def load_vq_decoder(
    kind: str,
    name_or_path: str | os.PathLike,
    subfolder: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    image_sizes: Sequence[tuple[int, int]] | Literal["family", "any"] = "family",
) -> VQDecoder:
    """Load the VQ decoder of family ``kind`` ("magvitv2" | "vqmodel") from a folder or hub id.

    Args:
        subfolder: where in ``name_or_path`` it lies (Lumina-DiMOO: "vqvae"; MAGVIT-v2: none).
        device, dtype: where and in which dtype to keep it (default: CPU, the checkpoint's fp32).
        image_sizes: allowed (height, width) in pixels; "family" takes the family's (magvitv2: 256x256 and 512x512;
            vqmodel: any multiple of 16), "any" allows any multiple of the downsampling factor.
    """
    model = _family(kind).load(os.fspath(name_or_path), subfolder, dtype)
    if device is not None:
        model = model.to(device)
    model.requires_grad_(False)
    return wrap_vq_decoder(kind, model, image_sizes)


# ---------------------------------------------------------------------------------------------- finding one
@dataclass(frozen=True)
class VQSource:
    """Where a VQ decoder lies: ``load_vq_decoder(source.kind, source.name_or_path, source.subfolder)``."""

    kind: str
    name_or_path: str
    subfolder: str | None = None


def _read_config(name_or_path: str, filename: str) -> dict | None:
    path = _resolve(name_or_path, filename, required=False)
    if path is None:
        return None
    with open(path) as f:
        return json.load(f)


def _detect(name_or_path: str) -> VQSource | None:
    """The VQ decoder at ``name_or_path`` itself or in its ``vqvae/`` subfolder, told apart by config.json."""
    config = _read_config(name_or_path, "config.json")
    name = (config or {}).get("_class_name")
    if name == "VQModel":
        return VQSource("vqmodel", name_or_path)
    if name == "MAGVITv2":
        return VQSource("magvitv2", name_or_path)
    sub = _read_config(name_or_path, "vqvae/config.json")
    if sub is not None and sub.get("_class_name") == "VQModel":
        return VQSource("vqmodel", name_or_path, "vqvae")
    return None


def find_vq_decoder(checkpoint: str | os.PathLike | None, vq_model_name_or_path: str | os.PathLike | None = None
                    ) -> VQSource:
    """Locate the VQ decoder for a model checkpoint (a folder or hub id).

    ``vq_model_name_or_path`` (the ``--vq_model_name_or_path`` flag) wins when given: a MAGVIT-v2 (config.json
    ``_class_name`` "MAGVITv2"), a ``VQModel``, or a folder/repo with a ``vqvae/`` VQModel. Otherwise the checkpoint is
    searched the same way: Lumina-DiMOO's hub repo is laid out as a diffusers pipeline with ``vqvae/``; an MMaDA
    checkpoint has no VQ model, so it raises ``FileNotFoundError`` saying to pass the flag (``showlab/magvitv2``).
    """
    if vq_model_name_or_path is not None:
        where = os.fspath(vq_model_name_or_path)
        found = _detect(where)
        if found is None:
            raise FileNotFoundError(
                f"{VQ_FLAG} {where}: no VQ decoder there (looked for config.json with _class_name 'MAGVITv2' or "
                f"'VQModel', and vqvae/config.json); MMaDA uses showlab/magvitv2, Lumina-DiMOO its checkpoint")
        return found
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint to look for a VQ decoder in: pass {VQ_FLAG}")
    where = os.fspath(checkpoint)
    found = _detect(where)
    if found is not None:
        return found
    config = _read_config(where, "config.json") or {}
    hint = (" MMaDA checkpoints carry no VQ model: pass " + VQ_FLAG + " showlab/magvitv2."
            if config.get("model_type") == "mmada" else
            " MMaDA decodes with showlab/magvitv2; Lumina-DiMOO with the VQModel in its checkpoint's vqvae/.")
    raise FileNotFoundError(f"no VQ decoder found in {where} (no MAGVITv2/VQModel config.json, no "
                            f"vqvae/config.json); pass {VQ_FLAG}.{hint}")
