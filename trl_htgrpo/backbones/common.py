"""Helpers shared by the backbone adapters: the attention bias of a padding mask, unwrapping a model, calling it
for the image logits only, the vocabulary check at load, and resolving a VQ decoder."""

from __future__ import annotations

import torch


def padding_attention_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) padding mask (1 = token) -> (B, 1, L, L) bool: position i may attend to j iff both are tokens.

    Exactly MMaDA's ``t2i_generate`` (and Lumina-DiMOO's wrapper): ``m[:, :, None] & m[:, None, :]``.
    Rows of padding positions are all False; LLaDA's forward turns False into the dtype's minimum
    (not -inf), so those rows stay finite and nothing reads them.
    """
    m = attention_mask.bool()
    return (m[:, :, None] & m[:, None, :]).unsqueeze(1)


def unwrap_model(model):
    """The user's module under DDP / DeepSpeed (``.module``) and PEFT (``get_base_model``) wrappers."""
    for _ in range(8):
        if isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        elif callable(getattr(model, "get_base_model", None)):
            inner = model.get_base_model()
            if inner is model:
                break
            model = inner
        else:
            break
    return model


def adapters_disabled(model) -> bool:
    """Whether a PEFT model's adapters are switched off or its ``"ref"`` adapter is active: how TRL scores the
    KL reference of a PEFT policy (``trl.trainer.utils.use_adapter``)."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no PEFT, no adapters
        return False
    model = getattr(model, "module", model)  # DDP / DeepSpeed engine
    if not callable(getattr(model, "get_base_model", None)):
        return False
    if getattr(model, "active_adapter", None) == "ref":
        return True
    return any(m.disable_adapters for m in model.modules() if isinstance(m, BaseTunerLayer))


def _accepts(model, name: str) -> bool:
    import inspect

    model = unwrap_model(model)
    try:
        return name in inspect.signature(getattr(model, "forward", model)).parameters
    except (TypeError, ValueError):
        return False


def image_logits_of(model, input_ids: torch.Tensor, kwargs: dict, positions: torch.Tensor,
                    vocab: tuple[int, int]) -> torch.Tensor:
    """Codebook logits (B, K, V) at ``positions`` (K,) of ``model(input_ids, **kwargs)``, vocabulary rows
    ``vocab = (a, b)``. A model whose forward takes ``logits_positions`` / ``logits_vocab`` (the native LLaDA) is
    asked for those only; any other model returns full logits, which are sliced."""
    a, b = vocab
    if _accepts(model, "logits_positions"):
        return model(input_ids=input_ids, logits_positions=positions, logits_vocab=(a, b), **kwargs).logits
    return model(input_ids=input_ids, **kwargs).logits[:, positions.to(input_ids.device), a:b]


def check_vocabulary(config, family: str, expected: int, others: dict[str, int]) -> None:
    """Fail at load when a checkpoint's logits width is not the family's published one, naming the family it fits."""
    width = getattr(config, "embedding_size", None) or getattr(config, "vocab_size", None)
    if width is None or width == expected:
        return
    fits = [name for name, w in others.items() if w == width]
    hint = f"; it is {fits[0]}'s ({width}): use that backbone" if fits else ""
    raise ValueError(
        f"the checkpoint's vocabulary ({width} logits, config.model_type={getattr(config, 'model_type', None)!r}) "
        f"does not fit the {family} backbone, which expects {expected}{hint}. Pass backbone=... to HTGRPOTrainer "
        "for a checkpoint with a resized vocabulary"
    )


def resolve_vq_decoder(vq, kind: str, device=None, load: bool = False, family: str | None = None):
    """A backbone's VQ decoder: a :class:`~trl_htgrpo.models.VQDecoder` (moved to ``device``), a
    :class:`~trl_htgrpo.models.VQSource` or path (loaded when ``load``), an ``nn.Module`` of ``kind`` (wrapped), or
    None (with ``load``: an error naming ``--vq_model_name_or_path``)."""
    from ..models.vq import VQ_FLAG, VQDecoder, VQSource, load_vq_decoder, wrap_vq_decoder

    if isinstance(vq, (str,)) or hasattr(vq, "__fspath__"):
        vq = VQSource(kind, str(vq))
    if isinstance(vq, torch.nn.Module):
        vq = wrap_vq_decoder(kind, vq, image_sizes="any")
    if isinstance(vq, VQSource) and load:  # the adapter checks its image size itself (from_model)
        vq = load_vq_decoder(vq.kind, vq.name_or_path, vq.subfolder, device=device, image_sizes="any")
    if isinstance(vq, VQDecoder) and device is not None:
        vq.model.to(device)
    if vq is None and load:
        raise RuntimeError(f"the {family or kind} backbone has no VQ decoder, so it cannot turn image tokens into "
                           f"pictures: pass {VQ_FLAG} (MMaDA: showlab/magvitv2; Lumina-DiMOO: its checkpoint, which "
                           "holds vqvae/), or vq_decoder= to the backbone")
    if vq is not None and not isinstance(vq, (VQDecoder, VQSource)):
        raise TypeError(f"vq_decoder must be a VQDecoder, a VQSource, a path or an nn.Module, got {type(vq).__name__}")
    return vq
