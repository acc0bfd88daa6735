"""Loading a hub checkpoint for a reward or a detector, with one error that names the model id and the reason."""

from __future__ import annotations

import os
from typing import Any


class ModelLoadError(RuntimeError):
    """A reward's or detector's model could not be loaded; the message names the model id, its role and why
    (offline / missing / wrong architecture). ``trl_htgrpo.rewards.RewardModelLoadError`` is this class."""


def load_reason(error: BaseException) -> str:
    """Why loading failed, in words: offline, missing, wrong architecture, or the exception itself."""
    from huggingface_hub import errors as hf

    chain, e = [], error
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(x) for x in chain).lower()
    if any(isinstance(x, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled, ConnectionError)) for x in chain) \
            or "offline" in text or "couldn't connect" in text or "cannot find the requested files in the" in text:
        return ("offline: not in the local Hugging Face cache and the hub cannot be reached; download it first "
                "(`hf download <id>`) or pass a local folder")
    if any(isinstance(x, (hf.RepositoryNotFoundError, hf.RevisionNotFoundError, hf.EntryNotFoundError,
                          hf.GatedRepoError, FileNotFoundError)) for x in chain) \
            or "not a valid model identifier" in text or "does not appear to have" in text or "no such file" in text:
        return "missing: no such repository, revision or file (or it is gated)"
    if "size mismatch" in text or "missing key" in text or "unexpected key" in text or "model_type" in text \
            or "wrong architecture" in text or "unrecognized" in text:
        return "wrong architecture: the weights do not fit the model this scorer builds"
    if "can't load" in text or "make sure" in text:  # transformers' OSError, which drops the hub's exception
        from huggingface_hub.constants import is_offline_mode

        if is_offline_mode():
            return "offline (HF_HUB_OFFLINE is set) and not in the local Hugging Face cache"
        return "missing or unreachable: not a local folder, not in the cache, and the hub did not provide it"
    return "failed"



def _why(model_id: str, err: BaseException) -> str:
    """:func:`load_reason`, or "missing: no such folder" for a local path that does not exist."""
    if (os.path.isabs(model_id) or model_id.startswith(".")) and not os.path.exists(model_id):
        return "missing: no such folder"
    why = load_reason(err)
    return why if why != "failed" else f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


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
