"""TrainingClient contract: protocol conformance; noop adapters refuse every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crucible_train.errors import BackendNotConfiguredError
from crucible_train.types import AdamParams, Datum, ModelInput

PORT = "training"

DATUM = Datum(
    model_input=ModelInput.from_ints([1, 2, 3]),
    loss_fn_inputs={
        "target_tokens": np.array([2, 3, 4]),
        "weights": np.ones(3, dtype=np.float32),
    },
)


def _custom_loss(datums: Any, logprobs: Any) -> Any:
    return 0.0, [np.zeros_like(lp) for lp in logprobs], {}


CALLS: dict[str, Callable[[Any], object]] = {
    "forward_backward": lambda c: c.forward_backward([DATUM], "cross_entropy"),
    "forward": lambda c: c.forward([DATUM], "cross_entropy"),
    "forward_backward_custom": lambda c: c.forward_backward_custom([DATUM], _custom_loss),
    "optim_step": lambda c: c.optim_step(AdamParams()),
    "save_state": lambda c: c.save_state("step-1"),
    "load_state": lambda c: c.load_state("/nonexistent/state"),
    "save_weights_for_sampler": lambda c: c.save_weights_for_sampler("step-1"),
    "create_sampling_client": lambda c: c.create_sampling_client("/nonexistent/weights"),
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
