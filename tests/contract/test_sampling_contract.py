"""SamplingClient contract: protocol conformance, picklability; noop refuses every call."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from crucible_train.errors import BackendNotConfiguredError
from crucible_train.types import ModelInput, SamplingParams

PORT = "sampling"

PROMPT = ModelInput.from_ints([1, 2, 3])

CALLS: dict[str, Callable[[Any], object]] = {
    "sample": lambda c: c.sample(PROMPT, 2, SamplingParams(max_tokens=4)),
    "compute_logprobs": lambda c: c.compute_logprobs(PROMPT),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_adapter_pickles(adapter, port_protocol):
    # Rollout workers receive sampling clients by pickle.
    assert isinstance(pickle.loads(pickle.dumps(adapter)), port_protocol)


def test_calls_cover_every_port_method(port_work_methods):
    assert set(CALLS) == port_work_methods


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)
