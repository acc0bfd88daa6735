"""Word-level tokenizer: a real PreTrainedTokenizerFast that round-trips through save/AutoTokenizer."""

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from trl_htgrpo.toy import ShapesDiffusionConfig
from trl_htgrpo.toy.prompts import compositions
from trl_htgrpo.toy.tokenizer import IMAGE_TOKENS, SPECIAL_TOKENS, build_tokenizer

PROMPT = "a photo of an orange square left of a blue cross"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_vocabulary_layout(tok):
    assert isinstance(tok, PreTrainedTokenizerFast)
    # 8 special tokens, then the words, then 13 image tokens; the config's default vocab matches.
    assert len(tok) == ShapesDiffusionConfig().vocab_size == 57
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(8))
    assert [tok.convert_tokens_to_ids(t) for t in IMAGE_TOKENS] == list(range(44, 57))
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.mask_token_id) == (0, 1, 2, 3, 7)
    assert tok.padding_side == "left"


@pytest.mark.parametrize("special", ["<|t2i|>", "<|soi|>", "<|eoi|>", "<|mdm_mask|>"] + [f"<img_{k}>" for k in range(13)])
def test_special_tokens_are_single_ids(tok, special):
    ids = tok(f"a {special} square", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3
    assert ids[1] == tok.convert_tokens_to_ids(special) != tok.unk_token_id
    assert tok.convert_ids_to_tokens(ids[1]) == special


def test_every_generated_prompt_word_is_known(tok):
    for keys, make, _ in compositions().values():
        for k in keys:
            ids = tok(make(k)["prompt"], add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids, make(k)["prompt"]


def test_unknown_words_map_to_unk_and_never_raise(tok):
    ids = tok("a photo of a zebra and a xylophone!", add_special_tokens=False)["input_ids"]
    words = ["a", "photo", "of", "a", "[UNK]", "and", "a", "[UNK]", "[UNK]"]  # "!" is its own (unknown) token
    assert ids == tok.convert_tokens_to_ids(words)
    assert ids.count(tok.unk_token_id) == 3
    assert tok("", add_special_tokens=False)["input_ids"] == []


def test_lowercases(tok):
    assert tok("A PHOTO Of A Red SQUARE")["input_ids"] == tok("a photo of a red square")["input_ids"]


def test_save_and_auto_load_give_identical_ids(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    text = f"<|t2i|> <bos> {PROMPT} zebra <eos> <|soi|> <|mdm_mask|> <img_3> <|eoi|>"
    expected = tok(text, add_special_tokens=False)["input_ids"]
    assert loaded(text, add_special_tokens=False)["input_ids"] == expected
    assert len(expected) == 2 + 11 + 1 + 5 and expected[0] == 4 and expected[-1] == 6
    assert loaded(PROMPT)["input_ids"] == tok(PROMPT)["input_ids"]
    assert (loaded.pad_token_id, loaded.mask_token_id, loaded.unk_token_id) == (0, 7, 1)
    assert loaded.padding_side == "left"
