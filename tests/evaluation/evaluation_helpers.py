"""Data and helpers shared by the benchmark tests (fixtures in conftest.py): the inputs written by the tests, a tiny
BLIP VQA model, and the command line loaded from examples/evaluate.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


#: 3 GenEval records (our own prompts, GenEval's format); the tiny detector sees persons everywhere
METADATA = [
    {"tag": "single_object", "include": [{"class": "person", "count": 1}], "prompt": "a photo of a person"},
    {"tag": "two_object", "include": [{"class": "person", "count": 1}, {"class": "dog", "count": 1}],
     "prompt": "a photo of a person and a dog"},
    {"tag": "colors", "include": [{"class": "person", "count": 1, "color": "red"}], "prompt": "a photo of a red person"},
]

#: 2 DPG-Bench items (our own), in dpg_bench.csv's columns
DPG_PROMPTS = {"cat0": "a red cat and a blue dog", "scene1": "two green dogs"}
DPG_ROWS = [  # item_id, proposition_id, dependency, tuple, question
    ("cat0", 1, "0", "entity - whole (cat)", "Is there a cat?"),
    ("cat0", 2, "1", "attribute - color (cat, red)", "Is the cat red?"),
    ("cat0", 3, "0", "entity - whole (dog)", "Is there a dog?"),
    ("cat0", 4, "3", "attribute - color (dog, blue)", "Is the dog blue?"),
    ("cat0", 5, "1,3", "relation - spatial (cat, dog, left of)", "Is the cat left of the dog?"),
    ("scene1", 1, "0", "entity - whole (dogs)", "Are there dogs?"),
    ("scene1", 2, "1", "other - count (dogs, ==2)", "Are there two dogs?"),
    ("scene1", 3, "1", "attribute - color (dogs, green)", "Are the dogs green?"),
]
CSV_HEADER = "item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,tuple,question_natural_language"


BLIP_WORDS = ["yes", "no", "is", "are", "there", "a", "the", "cat", "dog", "dogs", "red", "blue", "green", "two",
              "left", "of", "?"]


def save_tiny_blip(folder, yes_bias: float | None = None, seed: int = 0) -> str:
    """A BlipForQuestionAnswering with a word-level BERT tokenizer; ``yes_bias``: added to "yes"'s logit, so the
    first answer token is always "yes"."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *BLIP_WORDS]
    ids = {w: i for i, w in enumerate(vocab)}
    tok = BertTokenizerFast(vocab=ids, do_lower_case=True)
    config = BlipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=ids["[DEC]"],
                         pad_token_id=ids["[PAD]"], sep_token_id=ids["[SEP]"], eos_token_id=ids["[SEP]"],
                         initializer_range=1.0),  # large random weights: answers that vary with image and question
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16, initializer_range=1.0))
    torch.manual_seed(seed)
    model = BlipForQuestionAnswering(config)
    if yes_bias is not None:
        with torch.no_grad():
            model.text_decoder.cls.predictions.bias[ids["yes"]] += yes_bias
    model.save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(folder)
    return str(folder)



def cli():
    """examples/evaluate.py as a module (its main(argv) returns the results)."""
    spec = importlib.util.spec_from_file_location("evaluate_cli", ROOT / "examples" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def error_of(capsys) -> str:
    """The message of an argparse error (the usage lines before it name every flag)."""
    return capsys.readouterr().err.split(": error: ", 1)[1]
