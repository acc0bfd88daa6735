"""Rewards on CLIP embeddings: CLIP score, PickScore, HPSv2.1 and the LAION aesthetic predictor.

All four run on transformers' ``CLIPModel`` (no open_clip, torchvision or timm: those packages would replace
torch 2.13 here). Notation: ``v`` the image embedding, ``t`` the text embedding, ``cos = <v, t> / (|v| |t|)``.

=================  ======================================  ================================================
reward             weights                                 score
=================  ======================================  ================================================
CLIPScoreReward    openai/clip-vit-large-patch14           ``scale * max(cos, 0)``, scale 100 (torchmetrics)
PickScoreReward    yuvalkirstain/PickScore_v1              ``exp(logit_scale) * cos`` (~100 cos)
HPSv2Reward        xswu/HPSv2 HPS_v2.1_compressed.pt        ``cos`` (OpenCLIP ViT-H-14, HPSv2's transform)
AestheticReward    openai/clip-vit-large-patch14 + MLP     ``MLP(v / |v|)`` (about 1..10)
=================  ======================================  ================================================
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from PIL import Image

from .scoring import CLIP_MEAN, CLIP_STD, HubScorer, hub_file, load_into, on_meta, resize_longest_pad

logger = logging.getLogger(__name__)


def _features(out) -> torch.Tensor:
    """``get_image_features`` / ``get_text_features``: a tensor in transformers 4, an output whose
    ``pooler_output`` is the projected embedding in transformers 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / x.float().norm(dim=-1, keepdim=True)


class _CLIPScorer(HubScorer):
    """A ``CLIPModel`` from ``model_id`` with the image processor and tokenizer of ``processor_id``."""

    def __init__(self, model_id: str, *, processor_id: str | None = None, max_length: int = 77, **kwargs):
        super().__init__(model_id, **kwargs)
        self.processor_id = processor_id or model_id
        self.max_length = max_length

    def _what_loads(self) -> str:
        return repr(self.model_id) + ("" if self.processor_id == self.model_id else f" (processor {self.processor_id!r})")

    def _load_processor(self) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        self.image_processor = AutoImageProcessor.from_pretrained(self.processor_id, revision=self._proc_revision())
        self.tokenizer = AutoTokenizer.from_pretrained(self.processor_id, revision=self._proc_revision())

    def _proc_revision(self):
        return self.revision if self.processor_id == self.model_id else None

    def _load(self) -> None:
        from transformers import CLIPModel

        self._load_processor()
        self.model = CLIPModel.from_pretrained(self.model_id, revision=self.revision, dtype=self.dtype)
        self.model.to(self.device).eval().requires_grad_(False)

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:  # (B, 3, H, W)
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    def image_embeds(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, E) unit image embeddings, float32."""
        pixels = self.pixel_values(images).to(self.device, self.dtype)
        return _unit(_features(self.model.get_image_features(pixel_values=pixels)))

    def text_embeds(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, E) unit text embeddings, float32 (CLIP's 77-token context, truncated)."""
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        return _unit(_features(self.model.get_text_features(input_ids=tok["input_ids"],
                                                            attention_mask=tok["attention_mask"])))


class CLIPScoreReward(_CLIPScorer):
    """CLIP score: ``scale * max(cos(v, t), 0)`` with CLIP ViT-L/14.

    The field's conventions differ: torchmetrics' ``CLIPScore`` (the number text-to-image papers report) is
    ``100 * max(cos, 0)`` on ``openai/clip-vit-large-patch14`` (our default); Hessel et al. (2021) use
    ``2.5 * max(cos, 0)`` on ViT-B/32; MaskGRPO's ``reward_clip_score`` trains on the raw cosine
    (``scale=1, clamp=False``). Preprocessing: the model's CLIP image processor (shorter side to 224, bicubic,
    centre crop, CLIP normalisation); text truncated to 77 tokens.

    Validated on tiny random CLIP models only (see docs/preference_rewards.md).

    >>> reward = CLIPScoreReward("openai/clip-vit-large-patch14", scale=1.0, clamp=False)  # MaskGRPO's
    """

    name = "clipscore"

    def __init__(self, model_id: str = "openai/clip-vit-large-patch14", *, scale: float = 100.0, clamp: bool = True,
                 **kwargs):
        super().__init__(model_id, **kwargs)
        self.scale, self.clamp = scale, clamp

    def _score_batch(self, texts, images):
        cos = (self.image_embeds(images) * self.text_embeds(texts)).sum(-1)  # (b,)
        return self.scale * (cos.clamp(min=0) if self.clamp else cos)


class PickScoreReward(_CLIPScorer):
    """PickScore (Kirstain et al., 2023): ``scale * exp(logit_scale) * cos(v, t)``.

    ``yuvalkirstain/PickScore_v1`` (a CLIP ViT-H/14 fine-tuned on Pick-a-Pic) with the processor of
    ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``, as the PickScore README computes it (``exp(logit_scale)`` is
    about 100). Flow-GRPO trains on ``score / 26`` (``scale=1/26``). Validated on tiny random CLIP models only.
    """

    name = "pickscore"

    def __init__(self, model_id: str = "yuvalkirstain/PickScore_v1", *,
                 processor_id: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", scale: float = 1.0, **kwargs):
        super().__init__(model_id, processor_id=processor_id, **kwargs)
        self.scale = scale

    def _score_batch(self, texts, images):
        cos = (self.image_embeds(images) * self.text_embeds(texts)).sum(-1)  # (b,)
        return self.scale * self.model.logit_scale.float().exp() * cos


# -- HPSv2 --------------------------------------------------------------------------------------------------------

def openclip_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An OpenCLIP ``CLIP`` state dict (``visual.*``, ``transformer.*``, ...) -> transformers ``CLIPModel`` keys.

    The attention's packed ``in_proj_weight`` (3D, D) splits into q, k, v in that order; ``visual.proj`` (D, E)
    and ``text_projection`` (W, E) are transposed into ``nn.Linear`` weights; ``conv1`` has no bias in either.
    Keys it does not know raise (a checkpoint of another architecture).
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}

    def block(src: str, dst: str, k: str, v: torch.Tensor) -> None:
        rest = k[len(src):]
        i, _, leaf = rest.partition(".")
        d = f"{dst}.encoder.layers.{i}."
        if leaf in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = leaf.rsplit("_", 1)[1]
            q, kk, vv = v.chunk(3, dim=0)
            out[d + f"self_attn.q_proj.{kind}"], out[d + f"self_attn.k_proj.{kind}"] = q, kk
            out[d + f"self_attn.v_proj.{kind}"] = vv
            return
        names = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        mod, _, p = leaf.rpartition(".")
        if mod not in names:
            raise KeyError(f"unexpected key {k} in an OpenCLIP checkpoint (wrong architecture)")
        out[d + names[mod] + "." + p] = v

    simple = {
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight", "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "visual.ln_post.weight": "vision_model.post_layernorm.weight",
        "visual.ln_post.bias": "vision_model.post_layernorm.bias",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight", "ln_final.bias": "text_model.final_layer_norm.bias",
        "logit_scale": "logit_scale",
    }
    for k, v in sd.items():
        if k in simple:
            out[simple[k]] = v
        elif k == "visual.proj":
            out["visual_projection.weight"] = v.t().contiguous()
        elif k == "text_projection":
            out["text_projection.weight"] = v.t().contiguous()
        elif k.startswith("visual.transformer.resblocks."):
            block("visual.transformer.resblocks.", "vision_model", k, v)
        elif k.startswith("transformer.resblocks."):
            block("transformer.resblocks.", "text_model", k, v)
        elif k in ("attn_mask", "logit_bias"):
            continue
        else:
            raise KeyError(f"unexpected key {k} in an OpenCLIP checkpoint (wrong architecture)")
    return out


class HPSv2Reward(_CLIPScorer):
    """Human Preference Score v2 / v2.1 (Wu et al., 2023): ``cos(v, t)`` of an OpenCLIP ViT-H-14 fine-tuned on
    HPD v2, exactly as ``tgxs002/HPSv2: hpsv2/img_score.py`` computes it (``image_features @ text_features.T``
    of unit features, no logit scale; about 0.2-0.35 on real images).

    The architecture is ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (the transformers port of OpenCLIP ViT-H-14,
    whose config and tokenizer are read from ``processor_id``); the weights are the HPS checkpoint
    (``xswu/HPSv2``, ``HPS_v2.1_compressed.pt`` or ``HPS_v2_compressed.pt``, a local file or folder also works),
    converted from OpenCLIP's names by :func:`openclip_to_hf`. Preprocessing is HPSv2's evaluation transform
    (longest side to 224, zero padding; :func:`~trl_htgrpo.rewards.scoring.resize_longest_pad`).

    Validated on tiny random models against OpenCLIP 3.3.0 and HPSv2's own transform (a scratch environment,
    see docs/preference_rewards.md); not run on the real checkpoint here (no hub access).
    """

    name = "hpsv2"
    FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}

    def __init__(self, model_id: str = "xswu/HPSv2", *, version: str = "v2.1",
                 processor_id: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", checkpoint: str | None = None, **kwargs):
        if version not in self.FILES:
            raise ValueError(f"unknown HPS version {version!r}; valid: {sorted(self.FILES)}")
        super().__init__(model_id, processor_id=processor_id, **kwargs)
        self.version, self.checkpoint = version, checkpoint

    def _what_loads(self) -> str:
        return (f"{self.model_id!r} ({self.checkpoint or self.FILES[self.version]}, architecture and tokenizer "
                f"{self.processor_id!r})")

    def _load(self) -> None:
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        self.tokenizer = AutoTokenizer.from_pretrained(self.processor_id)
        config = CLIPConfig.from_pretrained(self.processor_id)
        path = hub_file(self.model_id, self.checkpoint or self.FILES[self.version], self.revision)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        model = on_meta(lambda: CLIPModel(config))
        load_into(model, openclip_to_hf(state), f"the HPS checkpoint {path}")
        self.image_size = config.vision_config.image_size
        self.model = model.to(self.device, self.dtype).eval().requires_grad_(False)

    def pixel_values(self, images):
        return resize_longest_pad(images, self.image_size, CLIP_MEAN, CLIP_STD)

    def _score_batch(self, texts, images):
        return (self.image_embeds(images) * self.text_embeds(texts)).sum(-1)  # (b,)


# -- LAION aesthetic predictor --------------------------------------------------------------------------------------

class AestheticMLP(torch.nn.Module):
    """The head of ``improved-aesthetic-predictor`` (``sac+logos+ava1-l14-linearMSE``): five linear layers and no
    activation ("linear"), dropout between them (inactive at inference): 768 -> 1024 -> 128 -> 64 -> 16 -> 1."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(dim, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16), torch.nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim) -> (B, 1)
        return self.layers(x)


class AestheticReward(_CLIPScorer):
    """LAION aesthetic score (``christophschuhmann/improved-aesthetic-predictor``): ``MLP(v / |v|)`` on the
    CLIP ViT-L/14 image embedding, as its ``simple_inference.py`` (and Flow-GRPO's ``aesthetic_scorer.py``)
    compute it; about 1 (ugly) to 10. The prompt is not used.

    The head's weights: ``head_id`` / ``head_filename``, by default TRL's hub copy used by its DDPO example
    (``trl-lib/ddpo-aesthetic-predictor``, ``aesthetic-model.pth``), or a local ``.pth`` such as the repository's
    ``sac+logos+ava1-l14-linearMSE.pth``. The MLP runs in float32.
    Validated on tiny random CLIP models and a hand-set head only.
    """

    name = "aesthetic"

    def __init__(self, model_id: str = "openai/clip-vit-large-patch14", *,
                 head_id: str = "trl-lib/ddpo-aesthetic-predictor", head_filename: str = "aesthetic-model.pth",
                 **kwargs):
        super().__init__(model_id, **kwargs)
        self.head_id, self.head_filename = head_id, head_filename

    def _what_loads(self) -> str:
        return f"{self.model_id!r} with the head {self.head_id!r} ({self.head_filename})"

    def _load(self) -> None:
        super()._load()
        state = torch.load(hub_file(self.head_id, self.head_filename), map_location="cpu", weights_only=True)
        head = AestheticMLP(self.model.config.projection_dim)
        try:
            head.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"wrong architecture: the aesthetic head does not fit {head}: {e}") from e
        self.head = head.to(self.device).eval().requires_grad_(False)

    def _score_batch(self, texts, images):
        return self.head(self.image_embeds(images))[:, 0]  # (b,)
