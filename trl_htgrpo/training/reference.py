"""A frozen copy of the policy as the KL reference (TRL would reload one from the hub)."""

from __future__ import annotations

import copy

import torch
from transformers import PreTrainedModel


def reference_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of the policy for the KL reference. Under DeepSpeed ZeRO-3 the policy's parameters are
    already partitioned (``zero3_init_flag``: zero.Init at load) and ``copy.deepcopy`` only copies
    their empty placeholders: build the model again from its config (transformers partitions it the
    same way) and copy the gathered weights in."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    params = list(model.parameters())
    if not (is_deepspeed_zero3_enabled() and any(hasattr(p, "ds_id") for p in params)):
        return copy.deepcopy(model)
    import deepspeed

    ref = type(model)._from_config(copy.deepcopy(model.config), dtype=params[0].dtype)
    ref.generation_config = copy.deepcopy(model.generation_config)
    ref_params = list(ref.parameters())
    with deepspeed.zero.GatheredParameters(params + ref_params, modifier_rank=0):
        with torch.no_grad():
            for p, q in zip(params, ref_params):
                q.data.copy_(p.data)
    with torch.no_grad():
        for b, c in zip(model.buffers(), ref.buffers()):
            c.copy_(b)
    return ref


def prepare_reference(trainer, ref: PreTrainedModel, sync: bool) -> None:
    """Make ``ref`` the trainer's KL reference as TRL prepares its own (dropout off, DeepSpeed / FSDP / accelerate),
    with TRL's periodic sync when ``sync_ref_model``."""
    from trl.models import prepare_deepspeed, prepare_fsdp
    from trl.trainer.callbacks import SyncRefModelCallback
    from trl.trainer.utils import disable_dropout_in_model

    if trainer.args.disable_dropout:
        disable_dropout_in_model(ref)
    if trainer.is_deepspeed_enabled:
        trainer.ref_model = prepare_deepspeed(ref, trainer.accelerator)
    elif trainer.is_fsdp_enabled:
        trainer.ref_model = prepare_fsdp(ref, trainer.accelerator)
    else:
        trainer.ref_model = trainer.accelerator.prepare_model(ref, evaluation_mode=True)
    if sync:
        trainer.add_callback(SyncRefModelCallback(ref_model=trainer.ref_model, accelerator=trainer.accelerator))
