"""Tokenizer contract: protocol conformance, sane properties; noop refuses encode/decode."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError

PORT = "tokenizer"

CALLS: dict[str, Callable[[Any], object]] = {
    "encode": lambda t: t.encode("hello"),
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
