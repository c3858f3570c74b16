"""The byte-level tokenizer: the embedded default vocabulary, specials, round trips."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.errors import ConfigurationError, TokenizerError


def test_byte_level_default_vocabulary():
    tok = ByteLevelTokenizer()
    assert tok.vocab_size == 260
    assert dict(tok.special_tokens) == {
        "<|endoftext|>": 256,
        "<|im_start|>": 257,
        "<|im_end|>": 258,
        "<|pad|>": 259,
    }
    assert tok.eos_token_id == 256
    assert tok.encode("<|im_start|>hé<|im_end|>") == [257, 104, 0xC3, 0xA9, 258]


def test_byte_level_padding_and_validation():
    assert ByteLevelTokenizer(vocab_size=512).vocab_size == 512
    assert ByteLevelTokenizer(vocab_size=512).decode([300, 65]) == "A"  # padding ids are empty
    with pytest.raises(ConfigurationError, match="vocab_size"):
        ByteLevelTokenizer(vocab_size=259)
    with pytest.raises(ConfigurationError, match="unique"):
        ByteLevelTokenizer(special_tokens=["<a>", "<a>"])
    assert ByteLevelTokenizer(special_tokens=["<x>"]).eos_token_id is None


def test_byte_level_longest_special_wins():
    tok = ByteLevelTokenizer(special_tokens=["<a>", "<a><b>"])
    assert tok.encode("<a><b><a>") == [257, 256]


def test_byte_level_allow_special_false_and_invalid_utf8():
    tok = ByteLevelTokenizer()
    assert tok.encode("<|pad|>", allow_special=False) == list(b"<|pad|>")
    assert tok.decode([0xFF, 65]) == "\ufffdA"
    with pytest.raises(TokenizerError):
        tok.decode([260])
    with pytest.raises(TokenizerError):
        tok.encode("\ud800")


specials = st.sampled_from(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"])


@given(st.lists(st.one_of(st.text(), specials), max_size=8))
def test_byte_level_round_trip(parts):
    tok = ByteLevelTokenizer()
    text = "".join(parts).encode("utf-8", errors="ignore").decode("utf-8")
    for allow in (True, False):
        tokens = tok.encode(text, allow_special=allow)
        assert tok.decode(tokens) == text
        assert all(0 <= t < tok.vocab_size for t in tokens)
    for part in parts:
        if part in tok.special_tokens:
            assert tok.special_tokens[part] in tok.encode(text)


def test_byte_level_pickles():
    tok = ByteLevelTokenizer(special_tokens=["<s>"], vocab_size=300)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode("a<s>") == [97, 256]
    assert clone.vocab_size == 300
