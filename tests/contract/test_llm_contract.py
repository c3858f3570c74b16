"""LLMClient contract: protocol conformance; working adapters answer with a Completion and
fail with LLMClientError; noop refuses chat and completion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError, LLMClientError
from crucible_train.ports import Completion, LLMParams

PORT = "llm"

CALLS: dict[str, Callable[[Any], object]] = {
    "chat": lambda c: c.chat([{"role": "user", "content": "hi"}], LLMParams(max_tokens=4)),
    "complete": lambda c: c.complete("Once upon a time"),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_calls_cover_every_port_method(port_work_methods):
    assert set(CALLS) == port_work_methods


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_working_adapter_returns_a_completion(working_adapter, method):
    result = CALLS[method](working_adapter)
    assert isinstance(result, Completion)
    assert isinstance(result.text, str)
    assert result.finish_reason is None or isinstance(result.finish_reason, str)
    for count in (result.prompt_tokens, result.completion_tokens):
        assert count is None or (isinstance(count, int) and count >= 0)


def test_working_adapter_honours_max_tokens(working_adapter):
    result = working_adapter.complete("one two three four five six seven", LLMParams(max_tokens=2))
    assert result.completion_tokens is None or result.completion_tokens <= 2


def test_working_adapter_refusal_is_an_llm_client_error(working_adapter):
    # An empty conversation cannot be answered; the failure must be typed, never a raw
    # transport or parsing exception.
    with pytest.raises(LLMClientError):
        working_adapter.chat([])
