"""Tiny random Mask2Former (COCO's 80 labels) and CLIP checkpoints for tests (nothing is downloaded): the
photograph detector's two models, also the CLIP of the CLIP-based metrics. Imported by tests as `tiny_photo`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# COCO's 80 instance classes as mmdet, Detectron2 and transformers' Mask2Former checkpoints spell them
COCO_LABELS = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]


def save_tiny_photo_models(root: Path) -> tuple[str, str]:
    """(mask2former folder, clip folder) under ``root``. Mask2Former's class bias makes every query a "person"
    (p ~ 0.996, so detections pass 0.3); the CLIP folder has a letter-level tokenizer and an image processor."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer, Mask2FormerConfig, SwinConfig

    from trl_htgrpo.rewards.photo_detector import _mask2former_class

    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                      window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32,
                            encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1, decoder_layers=2,
                            num_attention_heads=2, num_queries=10, num_labels=80, common_stride=4,
                            id2label=dict(enumerate(COCO_LABELS)), label2id={n: i for i, n in enumerate(COCO_LABELS)})
    torch.manual_seed(0)
    m2f = _mask2former_class()(cfg)
    with torch.no_grad():
        m2f.class_predictor.bias[COCO_LABELS.index("person")] = 10.0
    m2f_dir = Path(root) / "mask2former"
    m2f.save_pretrained(m2f_dir)
    config = json.loads((m2f_dir / "config.json").read_text())
    config["architectures"] = ["Mask2FormerForUniversalSegmentation"]  # as a hub checkpoint says
    (m2f_dir / "config.json").write_text(json.dumps(config))

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz-":  # CLIP's BPE without merges: one token per letter
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=8))
    clip_dir = Path(root) / "clip"
    clip.save_pretrained(clip_dir)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(clip_dir)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip_dir)
    return str(m2f_dir), str(clip_dir)
