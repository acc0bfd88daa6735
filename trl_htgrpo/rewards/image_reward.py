"""ImageReward (Xu et al., 2023, ``THUDM/ImageReward``) on transformers' BLIP modules.

ImageReward is BLIP (ViT-L/16 image encoder at 224 px, a BERT-base text encoder with cross-attention to the
image in every layer) and an MLP on the text encoder's first token::

    e = ViT(image)                                   # (B, 1 + 196, 1024), LayerNorm eps 1e-6
    h = BERT(prompt tokens, cross-attending to e)    # (B, L, 768), L = 35 (padded to max_length, truncated)
    reward = (MLP(h[:, 0]) - 0.16717362830052426) / 1.0333394966054072

with the MLP of the LAION aesthetic predictor (768 -> 1024 -> 128 -> 64 -> 16 -> 1, no activation) and the
mean/std of ``ImageReward/ImageReward.py``. The package ``image-reward`` 1.5 needs timm 0.6.13, fairscale and
transformers 4 internals (and torchvision, which would replace torch 2.13 here), so this module rebuilds the same
network from ``BlipVisionModel`` and ``BlipTextModel`` (ports of the same BLIP code, parameter for parameter) and
converts the checkpoint's names (:func:`blip_to_hf`).
"""

from __future__ import annotations

import json
import logging

import torch

from .clip_rewards import AestheticMLP
from .scoring import CLIP_MEAN, CLIP_STD, HubScorer, hub_file, load_into, on_meta, resize_center_crop

logger = logging.getLogger(__name__)

MEAN, STD = 0.16717362830052426, 1.0333394966054072  # ImageReward/ImageReward.py


def blip_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """An ImageReward checkpoint -> ``{"vision": BlipVisionModel keys, "text": BlipTextModel keys, "mlp": ...}``.

    BLIP's ViT (``blip.visual_encoder``) names ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
    ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm``; transformers' BLIP vision
    model names the same tensors ``embeddings.{class_embedding, position_embedding, patch_embedding}``,
    ``encoder.layers.i.{layer_norm1, self_attn.qkv, self_attn.projection, layer_norm2, mlp.fc1, mlp.fc2}``,
    ``post_layernorm``. The text encoder (``blip.text_encoder``, BLIP's ``med.py``) has transformers' names
    already. ``vision_proj``/``text_proj`` (BLIP's contrastive heads) are unused and dropped.
    """
    vision, text, mlp = {}, {}, {}
    vit_names = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
                 "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
                 "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
                 "norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}
    block_names = {"norm1": "layer_norm1", "attn.qkv": "self_attn.qkv", "attn.proj": "self_attn.projection",
                   "norm2": "layer_norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    for k, v in state_dict.items():
        k = k.removeprefix("module.")
        if k.startswith("blip.visual_encoder."):
            rest = k[len("blip.visual_encoder."):]
            if rest in vit_names:
                vision[vit_names[rest]] = v
            elif rest.startswith("blocks."):
                i, _, leaf = rest[len("blocks."):].partition(".")
                mod, _, p = leaf.rpartition(".")
                if mod not in block_names:
                    raise KeyError(f"unexpected key {k} in an ImageReward checkpoint (wrong architecture)")
                vision[f"encoder.layers.{i}.{block_names[mod]}.{p}"] = v
            else:
                raise KeyError(f"unexpected key {k} in an ImageReward checkpoint (wrong architecture)")
        elif k.startswith("blip.text_encoder."):
            rest = k[len("blip.text_encoder."):]
            if not rest.endswith("position_ids"):
                text[rest] = v
        elif k.startswith("mlp."):
            mlp[k[len("mlp."):]] = v
        else:
            logger.debug("ImageReward checkpoint: unused key %s", k)
    return {"vision": vision, "text": text, "mlp": mlp}


class ImageReward(HubScorer):
    """ImageReward-v1.0 as a TRL reward: ``(MLP(BERT(prompt | ViT(image))[:, 0]) - mean) / std``, about -2..2.

    Args:
        model_id: the weights' repository (``THUDM/ImageReward``, files ``ImageReward.pt`` and
            ``med_config.json``) or a local folder with those files.
        tokenizer_id: BLIP's tokenizer, ``bert-base-uncased`` plus the two tokens BLIP adds (``[DEC]`` as BOS and
            ``[ENC]``): 30524 tokens, as in ``med_config.json``.
        max_length: prompt tokens (ImageReward pads to and truncates at 35).

    Preprocessing is ImageReward's ``_transform(224)``: shorter side to 224 (PIL bicubic), centre crop, CLIP
    normalisation. The published ``inference_rank`` encodes one image at a time; here a batch goes through at
    once (the same numbers: there is no padding on the image side and the prompt is padded to 35 either way).
    Validated on tiny random BLIP models only (see docs/preference_rewards.md).
    """

    name = "imagereward"

    def __init__(self, model_id: str = "THUDM/ImageReward", *, tokenizer_id: str = "google-bert/bert-base-uncased",
                 checkpoint: str = "ImageReward.pt", med_config: str = "med_config.json", max_length: int = 35,
                 image_size: int = 224, vision_layers: int = 24, vision_width: int = 1024, vision_heads: int = 16,
                 patch_size: int = 16, **kwargs):
        super().__init__(model_id, **kwargs)
        self.tokenizer_id, self.checkpoint, self.med_config = tokenizer_id, checkpoint, med_config
        self.max_length, self.image_size = max_length, image_size
        self.vision_shape = dict(num_hidden_layers=vision_layers, hidden_size=vision_width,
                                 num_attention_heads=vision_heads, patch_size=patch_size)

    def _what_loads(self) -> str:
        return f"{self.model_id!r} ({self.checkpoint}, tokenizer {self.tokenizer_id!r})"

    def _load(self) -> None:
        from transformers import AutoTokenizer, BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

        med = json.load(open(hub_file(self.model_id, self.med_config, self.revision)))
        path = hub_file(self.model_id, self.checkpoint, self.revision)
        tok = AutoTokenizer.from_pretrained(self.tokenizer_id)
        tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})  # BLIP's init_tokenizer
        self.tokenizer = tok
        width = self.vision_shape["hidden_size"]
        vision_cfg = BlipVisionConfig(image_size=self.image_size, intermediate_size=4 * width, layer_norm_eps=1e-6,
                                      hidden_act="gelu", **self.vision_shape)
        text_cfg = BlipTextConfig(
            vocab_size=med["vocab_size"], hidden_size=med["hidden_size"], encoder_hidden_size=width,
            intermediate_size=med["intermediate_size"], num_hidden_layers=med["num_hidden_layers"],
            num_attention_heads=med["num_attention_heads"], max_position_embeddings=med["max_position_embeddings"],
            layer_norm_eps=med["layer_norm_eps"], hidden_act=med["hidden_act"], pad_token_id=med.get("pad_token_id", 0),
            bos_token_id=None, eos_token_id=None, sep_token_id=None,
        )
        if len(tok) != text_cfg.vocab_size:
            raise ValueError(f"wrong architecture: the tokenizer {self.tokenizer_id!r} has {len(tok)} tokens with "
                             f"BLIP's two, the checkpoint's config {text_cfg.vocab_size}")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        parts = blip_to_hf(ckpt.get("state_dict", ckpt))
        vision = on_meta(lambda: BlipVisionModel(vision_cfg))
        text = on_meta(lambda: BlipTextModel(text_cfg, add_pooling_layer=False))
        load_into(vision, parts["vision"], f"the ImageReward vision encoder of {path}")
        load_into(text, parts["text"], f"the ImageReward text encoder of {path}")
        head = AestheticMLP(text_cfg.hidden_size)
        try:
            head.load_state_dict(parts["mlp"])
        except RuntimeError as e:
            raise ValueError(f"wrong architecture: the ImageReward MLP does not fit: {e}") from e
        self.vision = vision.to(self.device, self.dtype).eval().requires_grad_(False)
        self.text = text.to(self.device, self.dtype).eval().requires_grad_(False)
        self.head = head.to(self.device).eval().requires_grad_(False)

    def _score_batch(self, texts, images):
        pixels = resize_center_crop(images, self.image_size, CLIP_MEAN, CLIP_STD).to(self.device, self.dtype)
        image_embeds = self.vision(pixel_values=pixels).last_hidden_state  # (b, 1 + P, D_v)
        tok = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)  # (b, 1 + P)
        hidden = self.text(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                           encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
                           return_dict=True).last_hidden_state  # (b, L, D_t)
        reward = self.head(hidden[:, 0].float())[:, 0]  # (b,)
        return (reward - MEAN) / STD
