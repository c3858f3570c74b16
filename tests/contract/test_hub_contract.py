"""HubClient contract: offline adapters fail fast and typed; noop refuses every call.

Hub factories build an adapter that cannot reach any hub and has an empty cache (see
conftest), so a working adapter must raise HubUnavailableError promptly, never hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError, HubClientError, HubUnavailableError

PORT = "hub"

CALLS: dict[str, Callable[[Any], object]] = {
    "download": lambda h: h.download("org/tiny-model", "config.json"),
    "snapshot": lambda h: h.snapshot("org/tiny-model", allow_patterns=["*.json"]),
    "list_files": lambda h: h.list_files("org/tiny-model", revision="main"),
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
def test_unreachable_hub_fails_fast_and_typed(working_adapter, method):
    started = time.monotonic()
    with pytest.raises(HubUnavailableError, match="org/tiny-model") as info:
        CALLS[method](working_adapter)
    assert time.monotonic() - started < 5.0
    assert isinstance(info.value, HubClientError)
    assert isinstance(info.value, ConnectionError)
