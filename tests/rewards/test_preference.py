"""Preference scorers on TINY random models built here and loaded through the scorers' own loaders (nothing comes
from the hub): shapes, batching, the published arithmetic on hand-set embeddings, checkpoint conversion, errors."""

from __future__ import annotations

import asyncio
import json
import math
import threading

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

from trl_htgrpo.rewards import RemoteReward, RewardModelLoadError, get_reward
from trl_htgrpo.rewards.clip_rewards import (AestheticReward, CLIPScoreReward, HPSv2Reward, PickScoreReward,
                                             openclip_to_hf)
from trl_htgrpo.rewards.image_reward import MEAN, STD, ImageReward, blip_to_hf
from trl_htgrpo.rewards.scoring import prompt_text, resize_center_crop, resize_longest_pad
from trl_htgrpo.rewards.serve import make_server

WORDS = ["a", "red", "blue", "green", "square", "circle", "photo", "of", "two", "cats", "dog"]
PROMPTS = ["a red square", "a photo of two cats", "a blue circle"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module", autouse=True)
def _threads(one_thread):
    yield


def images(n=3, size=(40, 32), seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def word_tokenizer(special: dict[str, str], template: str | None, extra=()):
    """A word-level fast tokenizer (whitespace split) with the given special tokens first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(list(dict.fromkeys(special.values())) + list(extra) + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=special["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if template:
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, vocab[t]) for t in set(special.values()) if t in template])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def clip_tokenizer():
    return word_tokenizer({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>",
                           "unk_token": "<|unk|>"}, "<|startoftext|> $A <|endoftext|>")


def tiny_clip_config(tok, projection_dim=8):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, hidden_act="gelu"),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16, hidden_act="gelu"),
        projection_dim=projection_dim)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIPModel saved with a word tokenizer and a CLIP image processor (shortest edge 32, crop 32)."""
    from transformers import CLIPImageProcessorPil, CLIPModel

    tok = clip_tokenizer()
    torch.manual_seed(0)
    model = CLIPModel(tiny_clip_config(tok))
    path = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def reference_cos(clip_dir, texts, ims, pixels):
    """cos of the tiny CLIP's projected features, computed straight from the modules."""
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tok = AutoTokenizer.from_pretrained(clip_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        v = model.vision_model(pixel_values=pixels).pooler_output @ model.visual_projection.weight.T
        pooled = model.text_model(**tok).pooler_output
        t = pooled @ model.text_projection.weight.T
    return (unit(v) * unit(t)).sum(-1), model


# -- CLIP score, PickScore --------------------------------------------------------------------------------------------

def test_clipscore_loads_scores_and_batches(clip_dir):
    ims = images()
    reward = CLIPScoreReward(clip_dir, batch_size=2, scale=1.0, clamp=False)
    scores = reward(PROMPTS, ims)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    one_by_one = [CLIPScoreReward(clip_dir, batch_size=1, scale=1.0, clamp=False)([p], [im])[0]
                  for p, im in zip(PROMPTS, ims)]
    assert scores == pytest.approx(one_by_one, abs=1e-6)
    pixels = resize_center_crop(ims, 32)  # the processor's resize + crop, as OpenAI CLIP's transform
    cos, _ = reference_cos(clip_dir, PROMPTS, ims, pixels)
    assert scores == pytest.approx(cos.tolist(), abs=1e-5)
    assert len(set(round(s, 6) for s in scores)) == 3  # prompts and images matter
    default = CLIPScoreReward(clip_dir)(PROMPTS, ims)  # 100 max(cos, 0)
    assert default == pytest.approx([100 * max(c, 0.0) for c in cos.tolist()], abs=1e-3)


def test_clipscore_arithmetic_on_set_embeddings(clip_dir):
    reward = CLIPScoreReward(clip_dir).load()
    reward.image_embeds = lambda ims: torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    reward.text_embeds = lambda texts: torch.tensor([[0.6, 0.8], [-0.6, 0.8]])
    # cos = 0.6 and -0.6: 100 max(cos, 0) = 60 and 0; MaskGRPO's raw cosine: 0.6 and -0.6
    assert reward(PROMPTS[:2], images(2)) == pytest.approx([60.0, 0.0])
    reward.scale, reward.clamp = 1.0, False
    assert reward(PROMPTS[:2], images(2)) == pytest.approx([0.6, -0.6])


def test_pickscore_is_logit_scale_times_cos(clip_dir):
    reward = PickScoreReward(clip_dir, processor_id=clip_dir).load()
    with torch.no_grad():
        reward.model.logit_scale.fill_(math.log(50.0))
    reward.image_embeds = lambda ims: torch.tensor([[0.6, 0.8]])
    reward.text_embeds = lambda texts: torch.tensor([[0.8, 0.6]])
    # cos = 0.48 + 0.48 = 0.96; exp(logit_scale) * cos = 50 * 0.96 = 48; Flow-GRPO's /26: 48 / 26
    assert reward(["x"], images(1)) == pytest.approx([48.0])
    reward.scale = 1 / 26
    assert reward(["x"], images(1)) == pytest.approx([48.0 / 26])


def test_pickscore_through_its_loader(clip_dir):
    ims = images()
    scores = PickScoreReward(clip_dir, processor_id=clip_dir, batch_size=2)(PROMPTS, ims)
    cos, model = reference_cos(clip_dir, PROMPTS, ims, resize_center_crop(ims, 32))
    assert scores == pytest.approx((model.logit_scale.exp() * cos).tolist(), abs=1e-4)


# -- HPSv2 ------------------------------------------------------------------------------------------------------------

def hf_to_openclip(sd):
    """The inverse of openclip_to_hf, to write a tiny checkpoint with OpenCLIP's names (HPS's format)."""
    out = {}
    names = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    simple = {"vision_model.embeddings.class_embedding": "visual.class_embedding",
              "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
              "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
              "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight", "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
              "vision_model.post_layernorm.weight": "visual.ln_post.weight",
              "vision_model.post_layernorm.bias": "visual.ln_post.bias",
              "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
              "text_model.embeddings.position_embedding.weight": "positional_embedding",
              "text_model.final_layer_norm.weight": "ln_final.weight", "text_model.final_layer_norm.bias": "ln_final.bias",
              "logit_scale": "logit_scale"}
    for k, v in sd.items():
        if k in simple:
            out[simple[k]] = v
        elif k == "visual_projection.weight":
            out["visual.proj"] = v.t()
        elif k == "text_projection.weight":
            out["text_projection"] = v.t()
        elif ".encoder.layers." in k:
            tower, rest = k.split(".encoder.layers.")
            i, _, leaf = rest.partition(".")
            prefix = ("visual.transformer.resblocks." if tower == "vision_model" else "transformer.resblocks.") + i
            if leaf.startswith("self_attn.q_proj"):
                kind = leaf.rsplit(".", 1)[1]
                qkv = [sd[f"{tower}.encoder.layers.{i}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
                out[f"{prefix}.attn.in_proj_{kind}"] = torch.cat(qkv)
            elif not leaf.startswith(("self_attn.k_proj", "self_attn.v_proj")):
                mod, _, p = leaf.rpartition(".")
                out[f"{prefix}.{names[mod]}.{p}"] = v
    return out


@pytest.fixture(scope="module")
def hps_files(clip_dir, tmp_path_factory):
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(clip_dir)
    sd = {k: v for k, v in model.state_dict().items() if "position_ids" not in k}
    path = tmp_path_factory.mktemp("tiny-hps") / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": hf_to_openclip(sd)}, path)
    return str(path), model


def test_openclip_conversion_round_trips(hps_files):
    path, model = hps_files
    converted = openclip_to_hf(torch.load(path, weights_only=True)["state_dict"])
    expected = {k: v for k, v in model.state_dict().items() if "position_ids" not in k}
    assert sorted(converted) == sorted(expected)
    assert all(torch.equal(converted[k], expected[k]) for k in expected)
    with pytest.raises(KeyError, match="unexpected key visual.head.weight"):
        openclip_to_hf({"visual.head.weight": torch.zeros(1)})


def test_hpsv2_scores_cos_with_hps_transform(clip_dir, hps_files):
    path, _ = hps_files
    ims = images(3, size=(40, 20))  # landscape: HPS pads to a square, CLIP would crop
    reward = HPSv2Reward(path, processor_id=clip_dir, batch_size=2)
    scores = reward(PROMPTS, ims)
    pixels = resize_longest_pad(ims, 32)
    cos, _ = reference_cos(clip_dir, PROMPTS, ims, pixels)
    assert scores == pytest.approx(cos.tolist(), abs=1e-5)
    assert scores == pytest.approx([HPSv2Reward(path, processor_id=clip_dir, batch_size=1)([p], [im])[0]
                                    for p, im in zip(PROMPTS, ims)], abs=1e-6)
    # the folder form with the version's file name
    folder = HPSv2Reward(str(__import__("os").path.dirname(path)), processor_id=clip_dir)
    assert folder(PROMPTS, ims) == pytest.approx(scores, abs=1e-6)
    # hand-set embeddings: HPS is the plain cosine, no logit scale: 0.6*0.8 + 0.8*0.6 = 0.96
    reward.image_embeds = lambda ims: torch.tensor([[0.6, 0.8]])
    reward.text_embeds = lambda texts: torch.tensor([[0.8, 0.6]])
    assert reward(["x"], images(1)) == pytest.approx([0.96])


def test_resize_longest_pad_geometry():
    # 40x20 (w x h) -> scale 32/40 = 0.8 -> 32x16, padded 8 rows above and 8 below with zeros (before Normalize)
    im = Image.new("RGB", (40, 20), (255, 255, 255))
    x = resize_longest_pad([im], 32, mean=(0, 0, 0), std=(1, 1, 1))[0]
    assert x.shape == (3, 32, 32)
    assert torch.all(x[:, :8] == 0) and torch.all(x[:, 24:] == 0)
    assert torch.allclose(x[:, 8:24], torch.ones(3, 16, 32), atol=1e-5)


def test_resize_center_crop_geometry():
    # 40x20 -> shorter side 32: 64x32, then the centred 32x32 crop starting at column round((64-32)/2) = 16
    left = Image.new("RGB", (20, 20), (255, 0, 0))
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste(left, (0, 0))  # left half red, right half blue
    x = resize_center_crop([im], 32, mean=(0, 0, 0), std=(1, 1, 1))[0]
    assert x.shape == (3, 32, 32)
    assert x[0, :, :12].mean() > 0.95 and x[2, :, 20:].mean() > 0.95  # red on the left, blue on the right


# -- aesthetic ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aesthetic_head(tmp_path_factory):
    """A head whose only path is 3 * (2 * v_0) + 1: five linear layers with no activation give 6 v_0 + 1."""
    from trl_htgrpo.rewards.clip_rewards import AestheticMLP

    head = AestheticMLP(8)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.layers[0].weight[0, 0] = 2.0
        head.layers[2].weight[0, 0] = 1.0
        head.layers[4].weight[0, 0] = 1.0
        head.layers[6].weight[0, 0] = 1.0
        head.layers[7].weight[0, 0] = 3.0
        head.layers[7].bias[0] = 1.0
    path = tmp_path_factory.mktemp("tiny-aesthetic") / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(head.state_dict(), path)
    return str(path)


def test_aesthetic_is_linear_head_on_unit_image_embedding(clip_dir, aesthetic_head):
    reward = AestheticReward(clip_dir, head_id=aesthetic_head).load()
    reward.image_embeds = lambda ims: torch.tensor([[0.6, 0.8] + [0.0] * 6, [-0.6, 0.8] + [0.0] * 6])
    # 6 * 0.6 + 1 = 4.6 and 6 * -0.6 + 1 = -2.6 (a ReLU in the head would give 1.0)
    assert reward(["ignored", "ignored"], images(2)) == pytest.approx([4.6, -2.6])


def test_aesthetic_through_its_loader(clip_dir, aesthetic_head):
    ims = images()
    reward = AestheticReward(clip_dir, head_id=aesthetic_head, batch_size=2)
    scores = reward(PROMPTS, ims)
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        v = unit(model.vision_model(pixel_values=resize_center_crop(ims, 32)).pooler_output
                 @ model.visual_projection.weight.T)
    assert scores == pytest.approx((6 * v[:, 0] + 1).tolist(), abs=1e-5)
    assert reward(["other", "prompts", "here"], ims) == scores  # the prompt is not used


# -- ImageReward --------------------------------------------------------------------------------------------------------

def bert_tokenizer(tmp_path):
    """bert-base-uncased's layout in miniature: [PAD]=0, [UNK], [CLS], [SEP], [MASK], then words."""
    from transformers import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    tok = BertTokenizer(str(vocab))
    tok.save_pretrained(tmp_path)
    return tok


def to_imagereward_names(vision_sd, text_sd, mlp_sd):
    """transformers BLIP names -> ImageReward.pt names (the inverse of blip_to_hf)."""
    out = {}
    vit = {"embeddings.class_embedding": "cls_token", "embeddings.position_embedding": "pos_embed",
           "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
           "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
           "post_layernorm.weight": "norm.weight", "post_layernorm.bias": "norm.bias"}
    block = {"layer_norm1": "norm1", "self_attn.qkv": "attn.qkv", "self_attn.projection": "attn.proj",
             "layer_norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    for k, v in vision_sd.items():
        if k in vit:
            out["blip.visual_encoder." + vit[k]] = v
        else:
            i, _, leaf = k[len("encoder.layers."):].partition(".")
            mod, _, p = leaf.rpartition(".")
            out[f"blip.visual_encoder.blocks.{i}.{block[mod]}.{p}"] = v
    out.update({"blip.text_encoder." + k: v for k, v in text_sd.items()})
    out.update({"mlp." + k: v for k, v in mlp_sd.items()})
    out["blip.vision_proj.weight"] = torch.zeros(4, 32)  # BLIP's contrastive head: unused
    return out


@pytest.fixture(scope="module")
def imagereward_files(tmp_path_factory):
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    from trl_htgrpo.rewards.clip_rewards import AestheticMLP

    root = tmp_path_factory.mktemp("tiny-imagereward")
    tok_dir = root / "tok"
    tok_dir.mkdir()
    tok = bert_tokenizer(tok_dir)
    med = {"vocab_size": len(tok) + 2, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
           "num_attention_heads": 2, "max_position_embeddings": 40, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
           "pad_token_id": 0, "encoder_width": 32, "add_cross_attention": True}
    (root / "med_config.json").write_text(json.dumps(med))
    torch.manual_seed(1)
    vision = BlipVisionModel(BlipVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=1,
                                              num_attention_heads=2, image_size=32, patch_size=16, layer_norm_eps=1e-6))
    text = BlipTextModel(BlipTextConfig(vocab_size=med["vocab_size"], hidden_size=16, encoder_hidden_size=32,
                                        intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        max_position_embeddings=40, layer_norm_eps=1e-12, bos_token_id=None,
                                        eos_token_id=None, sep_token_id=None), add_pooling_layer=False)
    head = AestheticMLP(16)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.1)
    sd = to_imagereward_names(vision.state_dict(), {k: v for k, v in text.state_dict().items()
                                                    if "position_ids" not in k}, head.state_dict())
    torch.save(sd, root / "ImageReward.pt")
    kwargs = dict(tokenizer_id=str(tok_dir), vision_layers=1, vision_width=32, vision_heads=2, patch_size=16,
                  image_size=32)
    return str(root), kwargs, (vision.eval(), text.eval(), head.eval())


def test_imagereward_conversion(imagereward_files):
    root, _, (vision, text, head) = imagereward_files
    parts = blip_to_hf(torch.load(f"{root}/ImageReward.pt", weights_only=True))
    assert sorted(parts["vision"]) == sorted(vision.state_dict())
    assert all(torch.equal(parts["vision"][k], v) for k, v in vision.state_dict().items())
    assert sorted(parts["mlp"]) == sorted(head.state_dict())


def test_imagereward_scores_and_batches(imagereward_files):
    root, kwargs, (vision, text, head) = imagereward_files
    ims = images(3, size=(40, 32))
    scores = ImageReward(root, batch_size=2, **kwargs)(PROMPTS, ims)
    one = [ImageReward(root, batch_size=1, **kwargs)([p], [im])[0] for p, im in zip(PROMPTS, ims)]
    assert scores == pytest.approx(one, abs=1e-5)
    # by hand with the modules: prompt padded to 35 tokens, [CLS] first (ImageReward does not swap in [ENC])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(kwargs["tokenizer_id"])
    tok.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    ids = tok(PROMPTS, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert ids["input_ids"].shape == (3, 35) and (ids["input_ids"][:, 0] == tok.cls_token_id).all()
    with torch.no_grad():
        e = vision(pixel_values=resize_center_crop(ims, 32)).last_hidden_state  # (3, 1 + 4, 32)
        h = text(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], encoder_hidden_states=e,
                 encoder_attention_mask=torch.ones(e.shape[:2], dtype=torch.long)).last_hidden_state
        expected = (head(h[:, 0])[:, 0] - MEAN) / STD
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)


def test_imagereward_normalisation_by_hand(imagereward_files):
    root, kwargs, _ = imagereward_files
    reward = ImageReward(root, **kwargs).load()
    with torch.no_grad():
        for p in reward.head.parameters():
            p.zero_()
        reward.head.layers[7].bias[0] = 1.0
    # MLP output 1.0 for every image: (1 - 0.16717362830052426) / 1.0333394966054072 = 0.8059562...
    assert reward(PROMPTS[:2], images(2)) == pytest.approx([0.8059562] * 2, abs=1e-7)


# -- loading errors -------------------------------------------------------------------------------------------------

def test_load_errors_name_the_model_and_the_reason(tmp_path, clip_dir, hps_files):
    with pytest.raises(RewardModelLoadError, match=r"CLIPScoreReward could not load 'nobody/no-such-clip' \(offline"):
        CLIPScoreReward("nobody/no-such-clip")(["x"], images(1))
    with pytest.raises(RewardModelLoadError, match=r"ImageReward could not load '.*' \(ImageReward.pt.*\(missing"):
        ImageReward(str(tmp_path))(["x"], images(1))
    bad = tmp_path / "bad.pt"
    sd = torch.load(hps_files[0], weights_only=True)["state_dict"]
    sd["visual.proj"] = torch.zeros(3, 3)
    torch.save({"state_dict": sd}, bad)
    with pytest.raises(RewardModelLoadError, match=r"HPSv2Reward could not load .*bad.pt.*wrong architecture"):
        HPSv2Reward(str(bad), processor_id=clip_dir)(["x"], images(1))
    head = tmp_path / "head.pth"
    torch.save({"layers.0.weight": torch.zeros(2, 2)}, head)
    with pytest.raises(RewardModelLoadError, match=r"AestheticReward could not load .*head.pth.*wrong architecture"):
        AestheticReward(clip_dir, head_id=str(head))(["x"], images(1))
    with pytest.raises(TypeError, match="clipscore scores PIL images; completion 0 is Tensor"):
        CLIPScoreReward(clip_dir)(["x"], [torch.zeros(3, 8, 8)])


def test_registry_builds_scorers_lazily(clip_dir):
    reward = get_reward("clipscore", model_id=clip_dir)
    assert isinstance(reward, CLIPScoreReward) and not reward._loaded and reward.__name__ == "clipscore"
    assert get_reward("hpsv2").version == "v2.1" and get_reward("imagereward").model_id == "THUDM/ImageReward"
    assert str(reward.device) == "cpu" and reward.dtype == torch.float32


def test_prompt_text():
    assert prompt_text("a cat") == "a cat"
    assert prompt_text([{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "a cat"}]}]) == "a cat"
    with pytest.raises(TypeError, match="cannot read a prompt text"):
        prompt_text(3)


def test_scorer_served_equals_in_process(clip_dir):
    # a scorer behind our server, scored through RemoteReward with lossless PNG, equals the in-process scores
    local = CLIPScoreReward(clip_dir)
    server = make_server(local, "clipscore")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        ims = images()
        expected = CLIPScoreReward(clip_dir)(PROMPTS, ims)
        served = asyncio.run(RemoteReward(url, image_format="PNG", batch_size=2)(PROMPTS, ims))
        # the same pixels; batches of 2 against one batch sum in another order (seen: 46.775944 vs 46.775936)
        assert served == pytest.approx(expected, rel=1e-6, abs=0)
    finally:
        server.shutdown()
        server.server_close()


def test_openclip_conversion_matches_open_clip():
    # runs where open_clip is installed (not in the CPU venv: its torchvision would replace torch)
    open_clip = pytest.importorskip("open_clip")
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    oc = open_clip.model.CLIP(embed_dim=8, vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16,
                                                           patch_size=16),
                              text_cfg=dict(context_length=77, vocab_size=100, width=16, heads=2, layers=1)).eval()
    cfg = CLIPConfig(text_config=dict(vocab_size=100, hidden_size=16, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, eos_token_id=99, hidden_act="gelu"),
                     vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                                        image_size=32, patch_size=16, hidden_act="gelu"), projection_dim=8)
    hf = CLIPModel(cfg).eval()
    hf.load_state_dict(openclip_to_hf(oc.state_dict()), strict=False)
    px = resize_longest_pad(images(2), 32)
    text = torch.zeros(2, 77, dtype=torch.long)
    text[0, :4], text[1, :3] = torch.tensor([98, 5, 6, 99]), torch.tensor([98, 9, 99])
    with torch.no_grad():
        assert torch.allclose(oc.encode_image(px, normalize=True),
                              unit(hf.get_image_features(pixel_values=px).pooler_output), atol=1e-5)
        assert torch.allclose(oc.encode_text(text, normalize=True),
                              unit(hf.get_text_features(input_ids=text).pooler_output), atol=1e-5)
