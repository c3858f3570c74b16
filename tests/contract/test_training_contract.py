"""TrainingClient contract: protocol conformance; noop adapters refuse every call; working
adapters return futures at once, run calls in submission order, never touch gradients in
``forward``, fail futures with typed errors and keep working afterwards."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from crucible_train.errors import BackendNotConfiguredError, ConfigurationError, CrucibleError
from crucible_train.ports import SamplingClient
from crucible_train.types import AdamParams, Datum, ForwardBackwardOutput, ModelInput

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


# --- working adapters -------------------------------------------------------------------------
# Working adapters must accept token ids 0..7 and sequences of 8 positions.

SHORT = Datum(
    model_input=ModelInput.from_ints([5, 6]),
    loss_fn_inputs={"target_tokens": np.array([6, 7]), "weights": np.ones(2, dtype=np.float32)},
)
STEP = AdamParams(learning_rate=0.05)
TIMEOUT = 120


def _logprobs(output: ForwardBackwardOutput) -> list[list[float]]:
    return [out["logprobs"].tolist() for out in output.loss_fn_outputs]


def test_every_call_returns_a_future_at_once(working_adapter):
    for method, call in CALLS.items():
        if method == "create_sampling_client":
            continue  # returns the client itself
        future = call(working_adapter)
        assert isinstance(future, Future), method
        future.exception(timeout=TIMEOUT)  # let it finish; failures are fine here


def test_outputs_follow_datum_order_with_one_logprob_per_position(working_adapter):
    output = working_adapter.forward_backward([DATUM, SHORT], "cross_entropy").result(TIMEOUT)
    assert isinstance(output, ForwardBackwardOutput)
    assert [out["logprobs"].shape for out in output.loss_fn_outputs] == [(3,), (2,)]
    for out in output.loss_fn_outputs:
        assert out["logprobs"].dtype == "float32"
        assert all(math.isfinite(v) and v <= 0 for v in out["logprobs"].tolist())
    assert math.isfinite(output.metrics["loss:sum"])


def test_calls_run_in_submission_order(working_adapter):
    done: list[int] = []
    futures = [
        working_adapter.forward([DATUM], "cross_entropy"),
        working_adapter.forward_backward([DATUM], "cross_entropy"),
        working_adapter.optim_step(STEP),
        working_adapter.forward([DATUM], "cross_entropy"),
        working_adapter.forward_backward([DATUM], "cross_entropy"),
        working_adapter.optim_step(STEP),
        working_adapter.forward([DATUM], "cross_entropy"),
    ]
    for index, future in enumerate(futures):
        future.add_done_callback(lambda _f, index=index: done.append(index))
    before, _, _, between, _, _, after = (future.result(TIMEOUT) for future in futures)
    assert done == sorted(done)
    # Each forward saw the weights of exactly the steps submitted before it.
    assert _logprobs(before) != _logprobs(between) != _logprobs(after)
    assert sum(_logprobs(after)[0]) > sum(_logprobs(before)[0])  # cross-entropy went down


def test_forward_touches_no_gradients(working_adapter):
    # An optimiser step after forward alone has no gradients to apply: nothing moves.
    first = working_adapter.forward([DATUM], "cross_entropy")
    working_adapter.optim_step(STEP)
    second = working_adapter.forward([DATUM], "cross_entropy")
    assert _logprobs(first.result(TIMEOUT)) == _logprobs(second.result(TIMEOUT))


def test_failures_are_typed_and_the_client_keeps_working(working_adapter):
    unknown = working_adapter.forward_backward([DATUM], "no_such_loss")
    missing = working_adapter.forward_backward([DATUM], "ppo")  # no logprobs, advantages
    state = working_adapter.load_state("/nonexistent/state")
    ok = working_adapter.forward([DATUM], "cross_entropy")
    assert isinstance(unknown.exception(TIMEOUT), ConfigurationError)
    assert isinstance(missing.exception(TIMEOUT), ConfigurationError)
    assert isinstance(state.exception(TIMEOUT), CrucibleError)
    assert isinstance(ok.result(TIMEOUT), ForwardBackwardOutput)


def test_state_round_trips(working_adapter):
    working_adapter.forward_backward([DATUM], "cross_entropy")
    working_adapter.optim_step(STEP)
    saved = working_adapter.forward([DATUM], "cross_entropy")
    path = working_adapter.save_state("contract")
    working_adapter.forward_backward([DATUM], "cross_entropy")
    working_adapter.optim_step(STEP)
    assert isinstance(path.result(TIMEOUT), str)
    assert working_adapter.load_state(path.result()).result(TIMEOUT) is None
    restored = working_adapter.forward([DATUM], "cross_entropy")
    assert _logprobs(restored.result(TIMEOUT)) == _logprobs(saved.result(TIMEOUT))


def test_weights_for_sampler_make_a_sampling_client(working_adapter):
    path = working_adapter.save_weights_for_sampler("contract").result(TIMEOUT)
    sampler = working_adapter.create_sampling_client(path)
    try:
        assert isinstance(sampler, SamplingClient)
        values = sampler.compute_logprobs(ModelInput.from_ints([1, 2, 3])).result(TIMEOUT)
        learner = working_adapter.forward([DATUM], "cross_entropy").result(TIMEOUT)
        assert values[1:] == pytest.approx(_logprobs(learner)[0][:2], abs=1e-4)
    finally:
        close = getattr(sampler, "close", None)
        if callable(close):
            close()
