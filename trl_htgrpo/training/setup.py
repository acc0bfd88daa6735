"""What HTGRPOTrainer prepares before TRL's __init__: the model and tokenizer, the backbone, sampler settings."""

from __future__ import annotations

import copy

from transformers import GenerationConfig

from ..backbones import backbone_for
from ..plugins import load_plugins, resolve_model_name


def load_model(model, processing_class, args, quantization_config=None):
    """(model, tokenizer, checkpoint folder) from a model name, folder or hub id, or a ``PreTrainedModel``."""
    load_plugins()
    path = None
    if isinstance(model, str):
        from transformers import AutoModel

        path = resolve_model_name(model)
        kwargs = dict(args.model_init_kwargs or {})
        if quantization_config is not None:
            kwargs["quantization_config"] = quantization_config
        if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
            kwargs["device_map"] = None  # as TRL: distributed training places the model itself ("auto" fails)
        model = AutoModel.from_pretrained(path, **kwargs)
    if processing_class is None:
        from transformers import AutoTokenizer

        processing_class = AutoTokenizer.from_pretrained(path or model.config._name_or_path)
    if getattr(model, "generation_config", None) is None:  # TRL's __init__ reads it
        model.generation_config = GenerationConfig()
    return model, processing_class, path or getattr(model.config, "_name_or_path", None) or None


def make_backbone(model, processing_class, args, checkpoint):
    """The family's adapter, with the config's VQ decoder and image size (an adapter refuses options it cannot use)."""
    return backbone_for(model, processing_class, checkpoint=checkpoint, vq_model_name_or_path=args.vq_model_name_or_path,
                        image_size=args.image_size)


def sampling_settings(args, backbone) -> dict:
    """Sampler settings: the config's, with the backbone's published defaults where the config leaves None."""
    defaults = getattr(backbone, "sampling_defaults", {})

    def pick(field, default):
        value = getattr(args, field)
        return value if value is not None else defaults.get(field, default)

    return dict(steps=pick("diffusion_steps", 12), guidance_scale=pick("guidance_scale", 3.5),
                temperature=args.temperature, reveal_noise=args.reveal_noise, schedule=args.mask_schedule,
                sampler=pick("sampler", "maskgit"))


def generic_peft_config(peft_config):
    """TRL's ModelConfig defaults ``lora_task_type`` to CAUSAL_LM, whose PEFT wrapper needs a generate() API that
    masked-diffusion models do not have; the generic PeftModel is what they need."""
    if peft_config is not None and str(getattr(peft_config, "task_type", None) or "") == "CAUSAL_LM":
        peft_config = copy.copy(peft_config)
        peft_config.task_type = None
    return peft_config


def check_datasets(*datasets) -> None:
    for split, ds in zip(("train_dataset", "eval_dataset"), datasets):
        cols = getattr(ds, "column_names", None) or []
        if isinstance(cols, dict):
            cols = next(iter(cols.values()), [])
        if ds is not None and cols and "prompt" not in cols:
            raise ValueError(f"{split} needs a 'prompt' column with the text prompts; it has {cols}")
        if {"image", "images"} & set(cols):
            raise ValueError(f"{split} has a column named 'image(s)', which switches TRL to its VLM path; rename it")
