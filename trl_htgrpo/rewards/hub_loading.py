"""Loading a transformers checkpoint for a detector, with an error that names the model id and the reason."""

from __future__ import annotations

import os
from typing import Any


class ModelLoadError(RuntimeError):
    """A detector's model could not be loaded; the message names the model id, its role and why."""


def _why(model_id: str, err: BaseException) -> str:
    text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    chain = f"{err} {err.__cause__ or ''}"
    if "outgoing traffic has been disabled" in chain or "couldn't connect" in chain.lower() or "offline" in chain.lower():
        return ("offline: it is not in the local Hugging Face cache and the hub cannot be reached (download it once "
                "with network access, or give a local folder; HF_HUB_OFFLINE=1 avoids the retries)")
    if os.path.isabs(model_id) or model_id.startswith("."):
        if not os.path.exists(model_id):
            return "missing: no such folder"
    if "is not a local folder and is not a valid model identifier" in chain or "Repository Not Found" in chain:
        return f"missing: no such folder or hub repository ({text})"
    return text


def load_pretrained(loader: Any, model_id: str, model_type: str, role: str, **kwargs: Any):
    """``loader.from_pretrained(model_id, **kwargs)``, checking first that the checkpoint's config is a ``model_type``.

    ``role`` names what the model is for in the error ("Mask2Former instance-segmentation model").
    Raises :class:`ModelLoadError` (offline / missing / wrong architecture / anything else).
    """
    from transformers import AutoConfig

    local = {k: v for k, v in kwargs.items() if k in ("local_files_only", "revision", "cache_dir", "token")}
    try:
        config = AutoConfig.from_pretrained(model_id, **local)
    except Exception as e:  # noqa: BLE001 (every failure becomes one clear error)
        raise ModelLoadError(f"cannot load the {role} {model_id!r}: {_why(model_id, e)}") from e
    if config.model_type != model_type:
        archs = ", ".join(getattr(config, "architectures", None) or []) or "no architectures listed"
        raise ModelLoadError(
            f"cannot load the {role} {model_id!r}: wrong architecture: it is a {config.model_type!r} checkpoint "
            f"({archs}); this needs a {model_type!r} checkpoint"
        )
    try:
        return loader.from_pretrained(model_id, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the {role} {model_id!r}: {_why(model_id, e)}") from e
