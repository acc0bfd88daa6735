"""The VLM judge on a TINY random LLaVA built here (CLIP vision tower + Llama), loaded through the judge's loader."""

from __future__ import annotations

import logging

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

from trl_htgrpo.rewards import RewardModelLoadError, get_reward
from trl_htgrpo.rewards.vlm_judge import UNIFIED_REWARD_PROMPT, VLMJudgeReward, parse_score

CHAT_TEMPLATE = ("{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
                 "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:"
                 "{% endif %}")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory, one_thread):
    """A tiny LLaVA whose LM head is zero: every logit ties, greedy decoding picks token 0, which is "4"."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

    words = ["4", "<unk>", "<pad>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "Final", "Score:", "a", "red",
             "square", "Text", "Caption:"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    processor = LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                                    crop_size={"height": 32, "width": 32}),
                               tokenizer=tokenizer, patch_size=16, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=16),
        text_config=LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, pad_token_id=2, bos_token_id=3,
                                eos_token_id=4),
        image_token_index=5, vision_feature_select_strategy="default", vision_feature_layer=-1)
    model = LlavaForConditionalGeneration(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 2, 4
    path = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)) for _ in range(n)]


def test_parse_score():
    assert parse_score("Alignment is good.\nFinal Score: 4") == pytest.approx(0.8)
    assert parse_score("Final Score: 3.5 (out of 5)") == pytest.approx(0.7)
    assert parse_score("Final Score:5") == pytest.approx(1.0)
    assert parse_score("Final Score: 9") is None  # outside 1..5, as Flow-GRPO's pattern
    assert parse_score("no score here") is None


def test_judge_generates_and_parses(vlm_dir):
    judge = VLMJudgeReward(vlm_dir, max_new_tokens=3, score_pattern=r"(\d)", batch_size=2)
    # the tiny model answers "4 4 4" to every image: the first digit / 5 = 0.8
    assert judge(["a red square"] * 3, images(3)) == pytest.approx([0.8] * 3)
    assert judge.generate(["a red square"], images(1)) == ["4 4 4"]
    text = judge.messages("a red square")[0]["content"][1]["text"]
    assert text == UNIFIED_REWARD_PROMPT.format(prompt="a red square") and text.endswith("Text Caption: [a red square]")


def test_unparseable_answers(vlm_dir, caplog):
    judge = VLMJudgeReward(vlm_dir, max_new_tokens=2)  # "4 4": no "Final Score:"
    with caplog.at_level(logging.WARNING, logger="trl_htgrpo.rewards.vlm_judge"):
        assert judge(["a red square"] * 2, images(2)) == [None, None]
    assert "no score matching" in caplog.text and "'4 4'" in caplog.text
    judge.on_unparseable = 0.0  # Flow-GRPO's behaviour
    assert judge(["a red square"], images(1)) == [0.0]
    judge.on_unparseable = "error"
    with pytest.raises(ValueError, match="gave no score matching"):
        judge(["a red square"], images(1))


def test_judge_errors():
    with pytest.raises(RewardModelLoadError, match=r"VLMJudgeReward could not load 'nobody/no-such-vlm' \(offline"):
        VLMJudgeReward("nobody/no-such-vlm")(["x"], images(1))
    with pytest.raises(ValueError, match="must contain '{prompt}'"):
        VLMJudgeReward(prompt_template="rate it")
    assert get_reward("vlm_judge").model_id == "CodeGoat24/UnifiedReward-qwen-7b"
