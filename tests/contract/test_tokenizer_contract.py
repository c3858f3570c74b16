"""Tokenizer contract: protocol conformance, sane properties, lossless round trips,
special tokens kept whole, batch encoding equal to encoding text by text; noop refuses
encode/encode_batch/decode."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError, TokenizerError

PORT = "tokenizer"

CALLS: dict[str, Callable[[Any], object]] = {
    "encode": lambda t: t.encode("hello"),
    "encode_batch": lambda t: t.encode_batch(["hello"]),
    "decode": lambda t: t.decode([1, 2]),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_properties_describe_the_vocabulary(adapter):
    assert isinstance(adapter.vocab_size, int)
    assert adapter.vocab_size >= 0
    assert isinstance(adapter.special_tokens, Mapping)
    for text, token in adapter.special_tokens.items():
        assert isinstance(text, str)
        assert 0 <= token < adapter.vocab_size
    eos = adapter.eos_token_id
    assert eos is None or 0 <= eos < adapter.vocab_size


def test_adapter_pickles(adapter, port_protocol):
    assert isinstance(pickle.loads(pickle.dumps(adapter)), port_protocol)


def test_calls_cover_every_port_method(port_work_methods):
    assert set(CALLS) == port_work_methods


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)


TEXTS = [
    "",
    "hello world",
    "Grüße, 你好, こんにちは, مرحبا, Привет",
    "emoji 👩‍👩‍👧 🎉 and flags 🇯🇵",
    "CRLF line\r\nnext\r\n\r\n",
    "   leading, trailing and   runs of   spaces\t\ttabs  \n\n\n",
    "code: def f(x):\n    return x ** 2  # comment",
    "numbers 1234567890 3.14159 -42",
]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_inverts_encode(working_adapter, text):
    tokens = working_adapter.encode(text)
    assert working_adapter.decode(tokens) == text
    assert all(0 <= t < working_adapter.vocab_size for t in tokens)
    assert working_adapter.encode(text) == tokens  # deterministic


@pytest.mark.parametrize("allow_special", [True, False])
def test_special_text_round_trips(working_adapter, allow_special):
    specials = sorted(working_adapter.special_tokens)[:8]
    text = "x " + " mid ".join(specials) + " y"
    tokens = working_adapter.encode(text, allow_special=allow_special)
    assert working_adapter.decode(tokens) == text


def test_special_tokens_are_never_split(working_adapter):
    # Sorted, capped sample: tiktoken's harmony preset registers ~1100 reserved tokens.
    for text, token in sorted(working_adapter.special_tokens.items())[:50]:
        for context in ("{}", "a{}b", " {} ", "{}{}"):
            tokens = working_adapter.encode(context.format(text, text), allow_special=True)
            assert token in tokens, (text, context)


def test_special_text_is_ordinary_text_when_not_allowed(working_adapter):
    specials = set(working_adapter.special_tokens.values())
    for text in sorted(working_adapter.special_tokens)[:20]:
        tokens = working_adapter.encode(f"a{text}b", allow_special=False)
        assert not specials & set(tokens), text


def test_out_of_range_ids_raise(working_adapter):
    with pytest.raises(TokenizerError):
        working_adapter.decode([working_adapter.vocab_size])
    with pytest.raises(TokenizerError):
        working_adapter.decode([-1])


def test_encode_is_the_same_after_pickling(working_adapter):
    text = "round trip <|endoftext|> ünïcode"
    clone = pickle.loads(pickle.dumps(working_adapter))
    assert clone.encode(text) == working_adapter.encode(text)
    assert clone.vocab_size == working_adapter.vocab_size
    assert dict(clone.special_tokens) == dict(working_adapter.special_tokens)
    assert clone.eos_token_id == working_adapter.eos_token_id


@pytest.mark.parametrize("allow_special", [True, False])
def test_encode_batch_equals_encoding_each_text(working_adapter, allow_special):
    specials = sorted(working_adapter.special_tokens)[:8]
    texts = [
        *TEXTS,
        "",
        "x " + " mid ".join(specials) + " y",
        *(f"a{text}b" for text in specials),
        TEXTS[2],  # a repeat
        "",
    ]
    expected = [working_adapter.encode(text, allow_special=allow_special) for text in texts]
    assert working_adapter.encode_batch(texts, allow_special=allow_special) == expected
    assert working_adapter.encode_batch(tuple(texts), allow_special=allow_special) == expected


def test_encode_batch_defaults_to_allowing_specials(working_adapter):
    texts = ["x " + " ".join(sorted(working_adapter.special_tokens)[:4]) + " y", "plain"]
    assert working_adapter.encode_batch(texts) == [working_adapter.encode(t) for t in texts]


def test_encode_batch_of_nothing_is_empty(working_adapter):
    assert working_adapter.encode_batch([]) == []
    assert working_adapter.encode_batch([], allow_special=False) == []
    assert working_adapter.encode_batch([""]) == [[]]
