"""Seeded, batched sampling of evaluation images: one seed per image, so an image never depends on the batch it is
drawn in, and the sampler settings a benchmark uses (the backbone's published ones unless overridden)."""

from __future__ import annotations

import zlib
from typing import Any, Iterator, Sequence

from PIL import Image

from ..diffusion.sampler import sample_images

#: sampler settings fixed by HTGRPOConfig's defaults where a backbone publishes none (``temperature``, ...)
FIXED_DEFAULTS = {"temperature": 1.0, "reveal_noise": 1.0, "schedule": "cosine"}


def image_seed(seed: int, index: int) -> int:
    """The sampler seed of evaluation image ``index`` (its position in the list of images of a run: prompt ``i``'s
    image ``k`` of ``G`` per prompt is ``i * G + k``)."""
    return zlib.crc32(f"eval-{seed}-{index}".encode())


def sampler_settings(backbone, sampler: str | None = None, steps: int | None = None,
                     guidance_scale: float | None = None, temperature: float | None = None,
                     reveal_noise: float | None = None, schedule: str | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`~trl_htgrpo.diffusion.sampler.sample_images`: each given value, else the backbone's
    published one (``backbone.sampling_defaults``: ``sampler``, ``diffusion_steps``, ``guidance_scale``; MMaDA mmada /
    15 / 3.5, Lumina-DiMOO lumina_dimoo / 64 / 4.0), else HTGRPOConfig's default (maskgit, 12, 3.5, temperature 1,
    reveal noise 1, cosine schedule), as the trainer picks them."""
    published = getattr(backbone, "sampling_defaults", {}) or {}

    def pick(value, key, default):
        return value if value is not None else published.get(key, default)

    return {
        "sampler": pick(sampler, "sampler", "maskgit"),
        "steps": int(pick(steps, "diffusion_steps", 12)),
        "guidance_scale": float(pick(guidance_scale, "guidance_scale", 3.5)),
        "temperature": float(temperature if temperature is not None else FIXED_DEFAULTS["temperature"]),
        "reveal_noise": float(reveal_noise if reveal_noise is not None else FIXED_DEFAULTS["reveal_noise"]),
        "schedule": schedule if schedule is not None else FIXED_DEFAULTS["schedule"],
    }


def draw_images(model, backbone, prompts: Sequence[str], seeds: Sequence[int], batch_size: int,
                **settings: Any) -> Iterator[tuple[int, list[Image.Image]]]:
    """Draw one image per prompt, image ``j`` with ``seeds[j]``, ``batch_size`` at a time; yields
    ``(start, images)`` per batch, so a caller can write each batch before the next is drawn."""
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        traj = sample_images(model, backbone, backbone.encode_prompts(chunk), seeds=seeds[start:start + batch_size],
                             **settings)
        yield start, backbone.decode_images(traj.codes)
