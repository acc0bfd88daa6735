"""MAGVIT-v2, the image tokenizer MMaDA decodes with (Show-o's, weights ``showlab/magvitv2``), written natively.

The published code (``Gen-Verse/MMaDA`` and ``showlab/Show-o``: ``models/modeling_magvitv2.py`` with
``models/common_modules.py``, identical in both) subclasses diffusers 0.32's ``ModelMixin`` and fails to import on
current diffusers. This module rebuilds the same network with the same state-dict keys, so
``MAGVITv2.from_pretrained("showlab/magvitv2")`` reads the published ``pytorch_model.safetensors`` strictly:

    encoder   conv_in -> down[0..L-1] (ResnetBlocks, Downsample except the last) -> mid (block_1, attn_1, block_2)
              -> norm_out -> swish -> conv_out (to 13 channels) -> quant_conv (1x1)
    quantize  lookup-free (LFQ): each of the 13 channels is quantized to its sign, code = sum_j 2^(12-j) [z_j > 0]
    decoder   post_quant_conv (1x1) -> conv_in -> mid -> up[L-1..0] (ResnetBlocks, Upsample except level 0)
              -> norm_out -> swish -> conv_out (3 channels)

With the published sizes (5 levels, 4 resamplings) a code covers 16 x 16 pixels: 32 x 32 codes <-> 512 px,
and decoded images lie (nominally) in [-1, 1], the range MMaDA's encoder input is normalized to.

The bit order is MSB first: channel 0 carries bit 12 (weight 4096), channel 12 bit 0; bit 1 -> +1, bit 0 -> -1.
The published class sets ``attn_resolutions=[5]`` with ``resolution=256``; no level's resolution (256, 128, ..., 16)
is 5, so there is no attention outside ``mid.attn_1`` and this module has none.

Validated: outputs equal the published code's (fp32, atol 1e-5) on seeded random weights at the published sizes
and at smaller ones, for decode, encode and the code <-> bits mapping (``tests/models/test_magvitv2.py``).
Not validated here: the released ``showlab/magvitv2`` weights themselves (no network in the tests).

Shapes: B batch, C channels, H x W pixels, h x w = H/16 x W/16 code grid, N = h * w codes, D = 13 bits.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_NAME = "pytorch_model.safetensors"
CONFIG_NAME = "config.json"


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), written out as the published ``nonlinearity`` (same rounding as its reference)."""
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """norm1 -> swish -> conv1 -> norm2 -> swish -> conv2, plus the input (1x1 ``nin_shortcut`` if C changes)."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))  # dropout 0 in the published model
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions with 1x1 convs q, k, v, proj_out and a residual."""

    def __init__(self, channels: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w)
        B, C, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(B, C, h * w).permute(0, 2, 1)  # (B, hw, C)
        k = self.k(y).reshape(B, C, h * w)  # (B, C, hw)
        v = self.v(y).reshape(B, C, h * w)  # (B, C, hw)
        attn = torch.softmax(torch.bmm(q, k) * (int(C) ** (-0.5)), dim=2)  # (B, hw_q, hw_k)
        out = torch.bmm(v, attn.permute(0, 2, 1)).reshape(B, C, h, w)  # out[:, :, i] = sum_j v[:, :, j] attn[i, j]
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Pad right and bottom by one, then a stride-2 3x3 conv (taming-transformers' asymmetric downsampling)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, 2h, 2w)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(channels: int, norm_groups: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, norm_groups)
    mid.attn_1 = AttnBlock(channels, norm_groups)
    mid.block_2 = ResnetBlock(channels, channels, norm_groups)
    return mid


def _run_mid(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


class Encoder(nn.Module):
    """Pixels (B, 3, H, W) in [-1, 1] -> continuous latents (B, z_channels, H/f, W/f), f = 2^(len(ch_mult)-1)."""

    def __init__(self, ch: int, ch_mult: Sequence[int], num_res_blocks: Sequence[int], in_channels: int,
                 z_channels: int, norm_groups: int):
        super().__init__()
        if len(num_res_blocks) != len(ch_mult):
            raise ValueError(f"encoder num_res_blocks {list(num_res_blocks)} needs one entry per ch_mult level "
                             f"{list(ch_mult)}")
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = ch
        for level, (mult, n_blocks) in enumerate(zip(ch_mult, num_res_blocks)):
            down = nn.Module()
            down.block = nn.ModuleList()
            for _ in range(n_blocks):
                down.block.append(ResnetBlock(block_in, ch * mult, norm_groups))
                block_in = ch * mult
            if level != len(ch_mult) - 1:
                down.downsample = Downsample(block_in)
            self.down.append(down)
        self.mid = _mid(block_in, norm_groups)
        self.norm_out = nn.GroupNorm(norm_groups, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, z_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(z_channels, z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for down in self.down:
            for block in down.block:
                h = block(h)
            if hasattr(down, "downsample"):
                h = down.downsample(h)
        h = _run_mid(self.mid, h)
        return self.quant_conv(self.conv_out(swish(self.norm_out(h))))


class Decoder(nn.Module):
    """Quantized latents (B, z_channels, h, w) -> pixels (B, out_channels, h*f, w*f), f = 2^(len(ch_mult)-1).

    ``up`` is indexed by level (``up.0`` is the full-resolution level) but run from the last level down, as published.
    """

    def __init__(self, ch: int, ch_mult: Sequence[int], num_res_blocks: Sequence[int], out_channels: int,
                 z_channels: int, norm_groups: int):
        super().__init__()
        if len(num_res_blocks) != len(ch_mult):
            raise ValueError(f"decoder num_res_blocks {list(num_res_blocks)} needs one entry per ch_mult level "
                             f"{list(ch_mult)}")
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, 1)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = _mid(block_in, norm_groups)
        ups = []
        for level in reversed(range(len(ch_mult))):
            up = nn.Module()
            up.block = nn.ModuleList()
            for _ in range(num_res_blocks[level]):
                up.block.append(ResnetBlock(block_in, ch * ch_mult[level], norm_groups))
                block_in = ch * ch_mult[level]
            if level != 0:
                up.upsample = Upsample(block_in)
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)
        self.norm_out = nn.GroupNorm(norm_groups, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(self.post_quant_conv(z))
        h = _run_mid(self.mid, h)
        for up in reversed(self.up):
            for block in up.block:
                h = block(h)
            if hasattr(up, "upsample"):
                h = up.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class LFQuantizer(nn.Module):
    """Lookup-free quantizer with a 2^D codebook (Yu et al. 2023, MAGVIT-v2, arXiv 2310.05737), D = 13 here.

    code c <-> bits b_j = (c >> (D-1-j)) & 1 for j = 0..D-1 (MSB first) <-> vector e_j = 2 b_j - 1 in {-1, +1}^D;
    a latent z maps to c = sum_j 2^(D-1-j) [z_j > 0] (z_j = 0 counts as -1).

    The buffers ``embedding`` (2^D, D) and ``power_vals`` (D,) are part of the published state dict; decoding reads
    ``embedding`` and encoding ``power_vals``, as the published code does, so loaded values are what is used.
    """

    def __init__(self, codebook_dim: int = 13):
        super().__init__()
        self.codebook_dim = codebook_dim
        self.codebook_size = 2**codebook_dim
        self.register_buffer("embedding", codes_to_bits(torch.arange(self.codebook_size), codebook_dim).float() * 2 - 1)
        self.register_buffer("power_vals", 2 ** torch.arange(codebook_dim - 1, -1, -1))

    def codes_to_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (...) long -> (..., D) float in {-1, +1}, read from ``embedding``."""
        return self.embedding[codes]

    def latents_to_codes(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, D, h, w) -> codes (B, h, w) long."""
        bits = (z > 0).long()  # (B, D, h, w)
        return (bits * self.power_vals.long().view(1, -1, 1, 1)).sum(1)


def codes_to_bits(codes: torch.Tensor, codebook_dim: int = 13) -> torch.Tensor:
    """codes (...) long -> bits (..., D) long in {0, 1}, most significant bit first.

    >>> codes_to_bits(torch.tensor([1, 4096, 5]), 13)[:, [0, 10, 11, 12]].tolist()
    [[0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 1]]
    """
    shifts = torch.arange(codebook_dim - 1, -1, -1, device=codes.device)  # (D,) = D-1 .. 0
    return (codes.long().unsqueeze(-1) >> shifts) & 1


def bits_to_codes(bits: torch.Tensor) -> torch.Tensor:
    """bits (..., D) in {0, 1}, most significant first -> codes (...) long; inverse of ``codes_to_bits``."""
    D = bits.shape[-1]
    return (bits.long() * (2 ** torch.arange(D - 1, -1, -1, device=bits.device))).sum(-1)


class MAGVITv2(nn.Module):
    """Show-o's MAGVIT-v2 image tokenizer: ``encoder``, ``quantize`` (LFQ) and ``decoder``.

    The defaults are the published (hard-coded) sizes of ``showlab/magvitv2``: 95.5 M parameters, 382 state-dict
    entries. Smaller sizes build a model of the same structure (``norm_groups`` must divide every width).

    Args:
        ch: base width; level i of the encoder has ``ch * encoder_ch_mult[i]`` channels, likewise the decoder.
        encoder_ch_mult, encoder_num_res_blocks: per-level width multipliers and ResnetBlock counts of the encoder.
        decoder_ch_mult, decoder_num_res_blocks: the same for the decoder (``up.i`` is level i; run from the last).
        z_channels: latent channels = LFQ bits D (codebook 2^D).
        in_channels, out_channels: image channels.
        norm_groups: GroupNorm groups (eps 1e-6 everywhere).
    """

    def __init__(
        self,
        ch: int = 128,
        encoder_ch_mult: Sequence[int] = (1, 2, 2, 4, 4),
        encoder_num_res_blocks: Sequence[int] = (4, 3, 4, 3, 4),
        decoder_ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        decoder_num_res_blocks: Sequence[int] = (4, 4, 3, 4, 3),
        z_channels: int = 13,
        in_channels: int = 3,
        out_channels: int = 3,
        norm_groups: int = 32,
    ):
        super().__init__()
        if len(encoder_ch_mult) != len(decoder_ch_mult):
            raise ValueError(f"encoder and decoder need the same number of levels, got {list(encoder_ch_mult)} and "
                             f"{list(decoder_ch_mult)}")
        self.config = dict(
            ch=ch, encoder_ch_mult=list(encoder_ch_mult), encoder_num_res_blocks=list(encoder_num_res_blocks),
            decoder_ch_mult=list(decoder_ch_mult), decoder_num_res_blocks=list(decoder_num_res_blocks),
            z_channels=z_channels, in_channels=in_channels, out_channels=out_channels, norm_groups=norm_groups,
        )
        self.downsample_factor = 2 ** (len(decoder_ch_mult) - 1)
        self.encoder = Encoder(ch, encoder_ch_mult, encoder_num_res_blocks, in_channels, z_channels, norm_groups)
        self.decoder = Decoder(ch, decoder_ch_mult, decoder_num_res_blocks, out_channels, z_channels, norm_groups)
        self.quantize = LFQuantizer(z_channels)

    @property
    def codebook_size(self) -> int:
        return self.quantize.codebook_size

    # ------------------------------------------------------------------ codes -> pixels
    def decode_code(self, codes: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        """codes (B, N) long, row-major over an h x w grid -> images (B, 3, h*f, w*f) float, nominally in [-1, 1].

        ``shape`` = (h, w); without it the grid is square, h = w = sqrt(N) (as the published ``decode_code``).
        """
        if codes.ndim != 2:
            raise ValueError(f"decode_code takes codes of shape (B, N), got {tuple(codes.shape)}")
        B, N = codes.shape
        if shape is None:
            side = math.isqrt(N)
            if side * side != N:
                raise ValueError(f"{N} codes do not form a square grid; pass shape=(h, w)")
            shape = (side, side)
        h, w = shape
        if h * w != N:
            raise ValueError(f"shape {tuple(shape)} holds {h * w} codes, got {N}")
        if codes.dtype.is_floating_point:
            raise TypeError(f"codes must be integers, got {codes.dtype}")
        if N and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        codes = codes.long().reshape(B, h, w).to(self.quantize.embedding.device)
        z_q = self.quantize.codes_to_vectors(codes)  # (B, h, w, D)
        z_q = z_q.permute(0, 3, 1, 2).contiguous().to(self.decoder.conv_in.weight.dtype)  # (B, D, h, w)
        return self.decoder(z_q)

    # ------------------------------------------------------------------ pixels -> codes
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) float in [-1, 1], H and W multiples of 16 -> codes (B, N) long, row-major.

        The published ``get_code`` (``encode`` there returns the quantized latents and the codes).
        """
        if images.ndim != 4:
            raise ValueError(f"encode takes images of shape (B, C, H, W), got {tuple(images.shape)}")
        f = self.downsample_factor
        if images.shape[-2] % f or images.shape[-1] % f:
            raise ValueError(f"image height and width must be multiples of {f}, got {tuple(images.shape[-2:])}")
        z = self.encoder(images.to(self.encoder.conv_in.weight.dtype))  # (B, D, h, w)
        return self.quantize.latents_to_codes(z).reshape(images.shape[0], -1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, folder_or_id: str | os.PathLike, *, revision: str | None = None,
                        **sizes) -> "MAGVITv2":
        """Load a MAGVIT-v2 checkpoint in the published layout (``config.json`` + ``pytorch_model.safetensors``).

        ``folder_or_id`` is a local folder or a hub repo id (``showlab/magvitv2``). The published config.json only
        names the class; size entries that match constructor arguments are used (``sizes`` override them). The
        weights must fit exactly: a missing, unexpected or misshapen tensor raises ``ValueError`` naming the file and
        the keys.
        """
        config_file = _resolve(folder_or_id, CONFIG_NAME, revision, required=False)
        weights_file = _resolve(folder_or_id, WEIGHTS_NAME, revision, required=True)
        kwargs = {}
        if config_file is not None:
            with open(config_file) as f:
                config = json.load(f)
            name = config.get("_class_name")
            if name is not None and name != cls.__name__:
                raise ValueError(f"{config_file} describes a {name!r}, not a {cls.__name__!r}")
            params = inspect.signature(cls.__init__).parameters
            unknown = sorted(k for k in config if not k.startswith("_") and k not in params)
            if unknown:
                warnings.warn(f"{config_file}: ignoring entries {unknown} that {cls.__name__} does not take",
                              stacklevel=2)
            kwargs = {k: v for k, v in config.items() if k in params and k != "self"}
        kwargs.update(sizes)

        from safetensors.torch import load_file

        state_dict = load_file(str(weights_file))
        with torch.device("meta"):
            model = cls(**kwargs)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        misshapen = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
        if missing or unexpected or misshapen:
            parts = []
            for label, keys in (("missing", missing), ("unexpected", unexpected)):
                if keys:
                    parts.append(f"{len(keys)} {label} key(s): {_preview(keys)}")
            if misshapen:
                parts.append(f"{len(misshapen)} key(s) of the wrong shape: " + _preview(
                    [f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}" for k in misshapen]))
            raise ValueError(f"{weights_file} does not fit {cls.__name__}({_kwargs_repr(kwargs)}): "
                             + "; ".join(parts))
        # every tensor takes the model's dtype (fp32 parameters, int64 power_vals); call .to(dtype) after loading
        state_dict = {k: v.to(expected[k].dtype) for k, v in state_dict.items()}
        model.load_state_dict(state_dict, strict=True, assign=True)
        return model.eval()


def _preview(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def _kwargs_repr(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "published sizes"


def _resolve(folder_or_id, filename: str, revision: str | None = None, required: bool = True) -> str | None:
    """Local path of ``filename`` in a folder, or of its download from the hub repo ``folder_or_id``.

    A file the folder or repo lacks raises ``FileNotFoundError`` if ``required``, else gives None; a repo that does
    not exist, or a file neither cached nor reachable offline, raises huggingface_hub's error.
    """
    folder_or_id = os.fspath(folder_or_id)
    if os.path.isdir(folder_or_id):
        path = os.path.join(folder_or_id, filename)
        if os.path.isfile(path):
            return path
        if required:
            raise FileNotFoundError(f"{folder_or_id} has no {filename}")
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return hf_hub_download(folder_or_id, filename, revision=revision)
    except EntryNotFoundError as e:
        if isinstance(e, LocalEntryNotFoundError) or required:  # offline and not cached: say so, not "missing"
            raise
        return None
