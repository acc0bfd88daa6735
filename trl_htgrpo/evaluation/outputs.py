"""Output folders of the benchmarks: a manifest saying whose images they hold, resuming, and atomic image writes.

Each benchmark folder holds ``manifest.json``. Its ``identity`` (benchmark, a hash of the model's config, a
fingerprint of its weights, the dtype, image size, sampler settings, seed, images per prompt) decides whether a
rerun may add to the folder (resume: images already there are kept and not drawn again) or must be refused: a
folder holding another model's images, or images drawn otherwise, is refused unless ``overwrite`` (then the images
and results this module's benchmarks write are deleted first; other files are left alone). The rest of the
manifest (model path, decoder, library version, time) is informational.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from PIL import Image

MANIFEST = "manifest.json"
#: manifest keys that must match for a folder to be resumed
IDENTITY_KEYS = ("benchmark", "config_sha256", "weights_sha256", "dtype", "image_size", "sampler", "seed",
                 "images_per_prompt")


class OutputFolderError(ValueError):
    """The output folder holds images this run must not add to (another model's, other sampler settings...)."""


def config_sha256(model) -> str:
    """sha256 of the model's config, without the fields that name where or how it was loaded."""
    cfg = {k: v for k, v in model.config.to_dict().items()
           if k not in ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "_commit_hash")}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


@torch.no_grad()
def weights_sha256(model, per_tensor: int = 1024) -> str:
    """A fingerprint of the weights: sha256 over every state-dict tensor's name, shape and ``per_tensor`` values
    taken at a regular stride, rounded to bfloat16 (so loading in float32 or bfloat16 gives the same hash).

    Reads about 1000 values per tensor (a few hundred thousand for an 8B model), not the weights files: a
    fine-tuned checkpoint differs from its base in many of them (a LoRA merge changes every value of a target
    matrix), while loading the same files twice, on any device, gives the same hash."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // per_tensor)
        values = flat[::step][:per_tensor].to(torch.bfloat16).float().cpu().numpy()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(values.tobytes())
    return h.hexdigest()


def model_identity(model) -> dict[str, str]:
    return {"config_sha256": config_sha256(model), "weights_sha256": weights_sha256(model)}


def prepare_output_dir(folder: str | os.PathLike, manifest: Mapping[str, Any], overwrite: bool,
                       artefacts: Callable[[Path], Iterable[Path]]) -> bool:
    """Make ``folder`` ready for a run described by ``manifest``; returns True when resuming a folder of the same
    identity (:data:`IDENTITY_KEYS`), False when starting afresh.

    Refuses (:class:`OutputFolderError`) a folder whose manifest differs, or that holds files but no manifest,
    unless ``overwrite``: then ``artefacts(folder)`` (the benchmark's images and results) are deleted first."""
    root = Path(folder)
    path = root / MANIFEST
    if path.exists():
        old = json.loads(path.read_text())
        diff = [k for k in IDENTITY_KEYS if old.get("identity", {}).get(k) != manifest["identity"].get(k)]
        if not diff:
            return True
        if not overwrite:
            lines = "; ".join(f"{k}: {old.get('identity', {}).get(k)!r} there, {manifest['identity'].get(k)!r} now"
                              for k in diff)
            raise OutputFolderError(
                f"{root} holds images of another run (model {old.get('model')!r}): {lines}. Pass --overwrite to "
                "delete them and start again, or choose another --output_dir")
    elif root.exists() and any(root.iterdir()):
        if not overwrite:
            raise OutputFolderError(
                f"{root} holds files but no {MANIFEST}, so their model is unknown: pass --overwrite to delete the "
                "benchmark's images and results there, or choose another --output_dir")
    if overwrite:
        for p in artefacts(root):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if path.exists():
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**manifest, "created": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
    return False


def save_png(image: Image.Image, path: Path) -> None:
    """Write ``image`` to ``path`` as PNG through a hidden temporary file renamed into place, so that an image that
    exists is complete (a run stopped mid-write leaves no half image for a resumed run to skip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def remove_partial(folder: Path) -> None:
    """Delete the temporary files of writes that were interrupted (:func:`save_png`)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink()
