from __future__ import annotations

import logging
import math

import pytest

from crucible_train.core.metrics_fanout import MultiplexMetricsSink
from crucible_train.errors import MetricsSinkError
from crucible_train.ports import MetricsSink

from fakes import FakeMetricsSink


def test_every_sink_gets_every_call_in_order():
    first, second = FakeMetricsSink(), FakeMetricsSink()
    sink = MultiplexMetricsSink(sinks=[first, second])
    assert isinstance(sink, MetricsSink)
    sink.log_hparams({"lr": 1e-3})
    sink.log_metrics({"loss": 1.5, "nan": math.nan}, step=0)
    sink.log_metrics({"loss": 1.0}, step=1)
    sink.log_long_text("sample", "hello")
    sink.sync()
    for recorder in (first, second):
        assert [step for step, _ in recorder.rows] == [0, 1]
        assert recorder.rows[1][1] == {"loss": 1.0}
        assert math.isnan(recorder.rows[0][1]["nan"])
        assert recorder.hparams == [{"lr": 1e-3}]
        assert recorder.texts == {"sample": "hello"}
        assert recorder.syncs == 1


def test_a_failing_sink_does_not_stop_the_others_and_is_reported_once(caplog):
    broken = FakeMetricsSink(fail_with=OSError("disk full"))
    healthy = FakeMetricsSink()
    sink = MultiplexMetricsSink(sinks=[broken, healthy])
    with caplog.at_level(logging.ERROR, logger="crucible_train.core.metrics_fanout"):
        for step in range(5):
            sink.log_metrics({"loss": float(step)}, step=step)
    assert [step for step, _ in healthy.rows] == [0, 1, 2, 3, 4]
    failure_lines = [r for r in caplog.records if "disk full" in r.getMessage()]
    assert len(failure_lines) == 1
    assert "FakeMetricsSink" in failure_lines[0].getMessage()
    assert sink.failures == {"0:FakeMetricsSink": 5}


def test_close_is_idempotent_summarises_failures_and_refuses_later_logging(caplog):
    broken = FakeMetricsSink(fail_with=RuntimeError("boom"))
    healthy = FakeMetricsSink()
    sink = MultiplexMetricsSink(sinks=[broken, healthy])
    sink.log_metrics({"x": 1}, step=0)
    with caplog.at_level(logging.ERROR):
        sink.close(exit_code=1)
        sink.close()
    assert healthy.closed == 1
    assert healthy.exit_codes == [1]
    assert broken.closed == 1
    assert any("lost calls" in r.getMessage() for r in caplog.records)
    with pytest.raises(MetricsSinkError, match="after close"):
        sink.log_metrics({"x": 2}, step=1)


def test_url_comes_from_the_first_sink_that_has_one():
    first, second = FakeMetricsSink(), FakeMetricsSink()
    second.url = "https://example.invalid/run/1"
    assert MultiplexMetricsSink(sinks=[first, second]).get_url() == second.url
    assert MultiplexMetricsSink(sinks=[first]).get_url() is None


def test_hparams_are_dumped_json_safe_and_secrets_masked_before_any_sink_sees_them():
    recorder = FakeMetricsSink()
    sink = MultiplexMetricsSink(sinks=[recorder], secrets=["s3cr3t-value"])
    sink.log_hparams(
        {
            "endpoint": "https://host/?auth=s3cr3t-value",
            "api_key": "anything",
            "nested": {"lr": 1e-3, "path": __import__("pathlib").Path("/tmp/x")},
            "nan": math.nan,
        }
    )
    (logged,) = recorder.hparams
    assert "s3cr3t-value" not in repr(logged)
    assert logged["api_key"] == "***"
    assert logged["nested"] == {"lr": 1e-3, "path": "/tmp/x"}
    assert logged["nan"] == "NaN"
