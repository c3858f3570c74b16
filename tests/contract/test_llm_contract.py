"""LLMClient contract: protocol conformance; noop refuses chat and completion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError
from crucible_train.ports import LLMParams

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
