"""Tiny random models for the benchmark tests, saved once per session (nothing is downloaded): MMaDA and
Lumina-DiMOO checkpoints in their published layouts (tests/real_layouts.py), GenEval's photograph detector
(Mask2Former + CLIP, CLIP also as the clipscore / pickscore metric), and a BLIP VQA model; the inputs (a 3-prompt
GenEval metadata file, a 2-prompt DPG-Bench prompts folder and question file) written here."""

from __future__ import annotations

import json

import pytest
import torch

from evaluation_helpers import COCO, CSV_HEADER, DPG_PROMPTS, DPG_ROWS, METADATA, save_tiny_blip


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session")
def real_models(tmp_path_factory):
    """{"mmada": checkpoint, "magvit": its separate decoder, "lumina": checkpoint with vqvae/}: tiny, random, 32 px."""
    from real_layouts import save_tiny_lumina, save_tiny_magvitv2, save_tiny_mmada

    root = tmp_path_factory.mktemp("real-layouts")
    return {"mmada": str(save_tiny_mmada(root / "mmada")), "magvit": str(save_tiny_magvitv2(root / "magvit")),
            "lumina": str(save_tiny_lumina(root / "lumina"))}


@pytest.fixture(scope="session")
def photo_models(tmp_path_factory):
    """(mask2former folder, clip folder). Mask2Former's class bias makes every query a person (p ~ 0.996); the CLIP
    folder has a tokenizer and an image processor, so it serves GenEval's colours and the CLIP-based metrics."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer, Mask2FormerConfig, SwinConfig

    from trl_htgrpo.rewards.photo_detector import _mask2former_class

    root = tmp_path_factory.mktemp("tiny-photo")
    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                      window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32,
                            encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1, decoder_layers=2,
                            num_attention_heads=2, num_queries=10, num_labels=80, common_stride=4,
                            id2label=dict(enumerate(COCO)), label2id={n: i for i, n in enumerate(COCO)})
    torch.manual_seed(0)
    m2f = _mask2former_class()(cfg)
    with torch.no_grad():
        m2f.class_predictor.bias[0] = 10.0  # "person"
    m2f.save_pretrained(root / "mask2former")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz-":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=8))
    clip.save_pretrained(root / "clip")
    tok.save_pretrained(root / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "clip")
    return str(root / "mask2former"), str(root / "clip")


@pytest.fixture(scope="session")
def blip_dirs(tmp_path_factory):
    """{"random": a tiny BLIP VQA, "yes": the same with "yes" always first}."""
    root = tmp_path_factory.mktemp("tiny-blip")
    return {"random": save_tiny_blip(root / "random"), "yes": save_tiny_blip(root / "yes", yes_bias=50.0)}


@pytest.fixture
def metadata_file(tmp_path):
    path = tmp_path / "evaluation_metadata.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in METADATA))
    return path


@pytest.fixture
def dpg_inputs(tmp_path):
    """(prompts folder, questions csv) of the two DPG items."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for item, text in DPG_PROMPTS.items():
        (prompts / f"{item}.txt").write_text(text)  # no trailing newline, as DPG-Bench's files
    lines = [CSV_HEADER]
    for item, qid, dep, tup, question in DPG_ROWS:
        broad, detailed = (s.strip() for s in tup.split("(")[0].split("-", 1))
        lines.append(f'{item},"{DPG_PROMPTS[item]}",,{qid},"{dep}",{broad},{detailed},"{tup}","{question}"')
    csv = tmp_path / "dpg_bench.csv"
    csv.write_text("\n".join(lines) + "\n")
    return prompts, csv
