"""MetricsSink contract: accepts every MetricValue, validates calls, closes idempotently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crucible_train.errors import MetricsSinkError

PORT = "metrics"


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_accepts_every_metric_value(working_adapter):
    working_adapter.log_hparams({"lr": 1e-4, "model": {"name": "tiny", "layers": 2}, "seed": 0})
    working_adapter.log_metrics(
        {
            "loss": 0.25,
            "tokens": 1024,
            "done": False,
            "nan": math.nan,
            "inf": math.inf,
            "-inf": -math.inf,
            "phase": "warmup",
            "np_float": np.float32(0.5),
            "np_int": np.int64(3),
        },
        step=0,
    )
    working_adapter.log_metrics({"loss": 0.2}, step=1)
    working_adapter.log_metrics({"loss": 0.1})
    working_adapter.log_long_text("sample/0", "a long transcript\nwith lines")
    working_adapter.sync()


def test_empty_metrics_are_accepted(working_adapter):
    working_adapter.log_metrics({}, step=5)


def test_url_is_a_string_or_none(working_adapter):
    url = working_adapter.get_url()
    assert url is None or isinstance(url, str)


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_invalid_step_is_refused(working_adapter, step):
    with pytest.raises(MetricsSinkError, match="step"):
        working_adapter.log_metrics({"loss": 1.0}, step=step)


def test_non_string_metric_name_is_refused(working_adapter):
    with pytest.raises(MetricsSinkError, match="name"):
        working_adapter.log_metrics({1: 0.5})


def test_close_is_idempotent(working_adapter):
    working_adapter.log_metrics({"loss": 1.0}, step=0)
    working_adapter.close()
    working_adapter.close()
    working_adapter.sync()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda sink: sink.log_metrics({"loss": 1.0}, step=1), id="log_metrics"),
        pytest.param(lambda sink: sink.log_hparams({"lr": 1.0}), id="log_hparams"),
        pytest.param(lambda sink: sink.log_long_text("k", "text"), id="log_long_text"),
    ],
)
def test_logging_after_close_is_refused(working_adapter, call):
    working_adapter.close()
    with pytest.raises(MetricsSinkError, match="close"):
        call(working_adapter)
