"""HttpClient contract: protocol conformance, idempotent close; noop refuses requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError

PORT = "http"

CALLS: dict[str, Callable[[Any], object]] = {
    "request": lambda c: c.request("GET", "http://127.0.0.1:9/", timeout=1.0),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_close_is_idempotent(adapter):
    adapter.close()
    adapter.close()


def test_calls_cover_every_port_method(port_work_methods):
    # close() is checked above: it must work on every adapter, noop included.
    assert set(CALLS) == port_work_methods - {"close"}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)
