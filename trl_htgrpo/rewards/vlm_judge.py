"""A chat VLM as judge, in the style of UnifiedReward (MaskGRPO's default text-to-image reward, Flow-GRPO's
``unifiedreward_score_sglang``): the model is shown the image and asked to rate caption alignment and quality
"from 1 to 5 after 'Final Score:'"; the reward is the parsed number divided by 5.
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

import torch

from .scoring import HubScorer

logger = logging.getLogger(__name__)

#: Flow-GRPO's UnifiedReward question (``flow_grpo/rewards.py``), without its leading "<image>\n": the chat
#: template places the image
UNIFIED_REWARD_PROMPT = (
    "You are given a text caption and a generated image based on that caption. Your task is to evaluate this image "
    "based on two key criteria:\n1. Alignment with the Caption: Assess how well this image aligns with the provided "
    "caption. Consider the accuracy of depicted objects, their relationships, and attributes as described in the "
    "caption.\n2. Overall Image Quality: Examine the visual quality of this image, including clarity, detail "
    "preservation, color accuracy, and overall aesthetic appeal.\nBased on the above criteria, assign a score from "
    "1 to 5 after 'Final Score:'.\nYour task is provided as follows:\nText Caption: [{prompt}]"
)
#: Flow-GRPO's pattern for the score
SCORE_PATTERN = r"Final Score:\s*([1-5](?:\.\d+)?)"


def parse_score(answer: str, pattern: str = SCORE_PATTERN, max_score: float = 5.0) -> float | None:
    """The first match of ``pattern`` in ``answer`` divided by ``max_score``; None when nothing matches.

    >>> parse_score("The image shows two cats. Final Score: 4")
    0.8
    >>> parse_score("I cannot rate this.") is None
    True
    """
    match = re.search(pattern, answer)
    if match is None:
        return None
    return float(match.group(1)) / max_score


class VLMJudgeReward(HubScorer):
    """Asks a chat VLM (transformers ``AutoModelForImageTextToText`` + ``AutoProcessor``) to rate each image.

    The message is ``[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text":
    prompt_template.format(prompt=caption)}]}]`` through the processor's chat template, answered greedily
    (Flow-GRPO: temperature 0) in at most ``max_new_tokens``; images are resized to ``image_size`` square first
    (Flow-GRPO: 512). Reward = ``parse_score(answer) = score / max_score`` (MaskGRPO: ``score / 5``).

    An answer without a score gives ``None`` (TRL then ignores this reward for that image) with a logged
    warning showing the answer, or raises with ``on_unparseable="error"``. Flow-GRPO's client scores such an
    answer 0.0, which would teach the policy that "no score" is the worst score; ``on_unparseable=0.0``
    reproduces that.

    The default ``model_id`` is UnifiedReward on Qwen2.5-VL (``CodeGoat24/UnifiedReward-qwen-7b``), which
    transformers loads natively; Flow-GRPO served ``UnifiedReward-7b-v1.5`` (LLaVA-OneVision) through sglang.
    Validated with a stand-in model only (see docs/preference_rewards.md).
    """

    name = "vlm_judge"

    def __init__(self, model_id: str = "CodeGoat24/UnifiedReward-qwen-7b", *, prompt_template: str = UNIFIED_REWARD_PROMPT,
                 score_pattern: str = SCORE_PATTERN, max_score: float = 5.0, max_new_tokens: int = 512,
                 image_size: int | None = 512, on_unparseable: str | float = "none", batch_size: int = 8, **kwargs):
        if not (on_unparseable in ("none", "error") or isinstance(on_unparseable, (int, float))):
            raise ValueError(f"on_unparseable must be 'none', 'error' or a number, got {on_unparseable!r}")
        if "{prompt}" not in prompt_template:
            raise ValueError("prompt_template must contain '{prompt}' (the caption)")
        super().__init__(model_id, batch_size=batch_size, **kwargs)
        self.prompt_template, self.score_pattern, self.max_score = prompt_template, score_pattern, max_score
        self.max_new_tokens, self.image_size, self.on_unparseable = max_new_tokens, image_size, on_unparseable

    def _load(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # batched generation continues every row at its end
        self.model = AutoModelForImageTextToText.from_pretrained(self.model_id, revision=self.revision,
                                                                 dtype=self.dtype)
        self.model.to(self.device).eval().requires_grad_(False)

    def messages(self, caption: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": self.prompt_template.format(prompt=caption)}]}]

    def generate(self, texts: Sequence[str], images) -> list[str]:
        """The model's answers (new tokens only, decoded) for one batch."""
        if self.image_size is not None:
            images = [im.resize((self.image_size, self.image_size)) for im in images]
        chats = [self.processor.apply_chat_template(self.messages(t), add_generation_prompt=True, tokenize=False)
                 for t in texts]
        inputs = self.processor(text=chats, images=list(images), padding=True, return_tensors="pt").to(self.device)
        for k, v in inputs.items():
            if torch.is_floating_point(v):
                inputs[k] = v.to(self.dtype)
        out = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
        new = out[:, inputs["input_ids"].shape[1]:]  # (b, new tokens)
        return self.processor.batch_decode(new, skip_special_tokens=True)

    def _score_answers(self, answers: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for a in answers:
            s = parse_score(a, self.score_pattern, self.max_score)
            if s is None:
                if self.on_unparseable == "error":
                    raise ValueError(f"{self.model_id} gave no score matching {self.score_pattern!r}: {a!r:.300}")
                logger.warning("vlm_judge: no score matching %r in the answer of %s: %r", self.score_pattern,
                               self.model_id, a[:300])
                s = None if self.on_unparseable == "none" else float(self.on_unparseable)
            out.append(s)
        return out

    def _score_batch(self, texts, images) -> list[float | None]:
        return self._score_answers(self.generate(texts, images))
