"""Unit tests for WandbMetricsSink: validation on the caller's thread, identity, URLs, secrets.

The sink talks to the fake W&B server (``tests/servers/fake_wandb.py``) over loopback;
request shapes are covered in ``test_transport.py``, delivery under faults in
``tests/integration/test_wandb_fake_server.py``.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crucible_train.adapters.delivery.spool import spool_status
from crucible_train.adapters.delivery.sync import SpoolingSink
from crucible_train.adapters.requests_http import RequestsHttpClient
from crucible_train.adapters.wandb import WandbMetricsSink
from crucible_train.errors import ConfigurationError, MetricsSinkError, MissingSecretError
from crucible_train.ports.metrics import MetricsSink
from servers.fake_wandb import API_KEY, FakeWandb


@pytest.fixture
def fake() -> Iterator[FakeWandb]:
    with FakeWandb() as server:
        yield server


@pytest.fixture
def http() -> Iterator[RequestsHttpClient]:
    client = RequestsHttpClient(pool_size=2, default_timeout=5.0)
    yield client
    client.close()


@pytest.fixture
def make(fake: FakeWandb, http: RequestsHttpClient, tmp_path: Path) -> Iterator[Any]:
    made: list[WandbMetricsSink] = []

    def build(**options: Any) -> WandbMetricsSink:
        settings: dict[str, Any] = {
            "http": http,
            "run_dir": str(tmp_path / "run"),
            "api_key": API_KEY,
            "project": "p",
            "entity": "e",
            "base_url": fake.url,
            "rate_per_s": 50.0,
            "burst": 10,
            "close_timeout_s": 5.0,
            "min_backoff_s": 0.05,
            "max_backoff_s": 0.2,
        }
        settings.update(options)
        sink = WandbMetricsSink(**settings)
        made.append(sink)
        return sink

    yield build
    for sink in made:
        sink.close()


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_is_a_metrics_sink_and_a_spooling_sink(make):
    sink = make()
    assert isinstance(sink, MetricsSink)
    assert isinstance(sink, SpoolingSink)
    assert sink.SINK_KIND == "wandb"


@pytest.mark.parametrize("key", [None, "", "   "])
def test_a_missing_key_names_the_variable(http, tmp_path, key):
    with pytest.raises(MissingSecretError, match="WANDB_API_KEY"):
        WandbMetricsSink(http=http, run_dir=str(tmp_path), api_key=key, project="p")


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("project", "a/b", "project"),
        ("project", "", "project"),
        ("entity", "has space", "entity"),
        ("run_id", "x?y", "run_id"),
        ("base_url", "ftp://x", "base_url"),
        ("app_url", "nope", "app_url"),
        ("rate_per_s", 0, "rate_per_s"),
        ("burst", 0, "burst"),
    ],
)
def test_invalid_settings_are_configuration_errors(make, option, value, match):
    with pytest.raises(ConfigurationError, match=match):
        make(**{option: value})


def test_the_key_appears_in_no_repr_and_no_file(make, fake, tmp_path):
    sink = make()
    sink.log_metrics({"loss": 1.0}, step=0)
    sink.close()
    assert API_KEY not in repr(sink)
    assert API_KEY not in repr(sink.sender)
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "value", [None, [1.0], {"a": 1}, 1j, b"bytes", object()], ids=lambda v: type(v).__name__
)
def test_values_that_are_not_numbers_or_strings_are_refused_on_the_caller_thread(make, value):
    sink = make()
    with pytest.raises(MetricsSinkError, match="loss"):
        sink.log_metrics({"loss": value}, step=0)
    assert sink.sender.pending_count == 0


@pytest.mark.parametrize("key", ["_step", "_runtime", "_timestamp", "_wandb", ""])
def test_reserved_or_empty_names_are_refused(make, key):
    with pytest.raises(MetricsSinkError, match="name"):
        make().log_metrics({key: 1.0})


def test_numbers_of_every_kind_are_accepted(make, fake):
    sink = make()
    sink.log_metrics(
        {
            "f": 0.5,
            "i": 3,
            "b": True,
            "s": "warmup",
            "nan": math.nan,
            "np32": np.float32(0.25),
            "np64": np.int64(7),
            "npb": np.bool_(False),
        },
        step=np.int64(4),
    )
    sink.close()
    (row,) = fake.history_rows("e", "p", sink.run_id)
    assert row["np32"] == 0.25
    assert row["np64"] == 7
    assert row["npb"] is False
    assert row["_step"] == 4
    assert math.isnan(row["nan"])


def test_the_callers_dict_is_copied(make, fake):
    sink = make()
    metrics = {"loss": 1.0}
    sink.log_metrics(metrics, step=0)
    metrics["loss"] = 2.0
    sink.close()
    assert fake.history_rows("e", "p", sink.run_id)[0]["loss"] == 1.0


def test_hparams_must_be_a_mapping_with_string_keys(make):
    sink = make()
    with pytest.raises(MetricsSinkError, match="mapping"):
        sink.log_hparams([("lr", 1)])  # type: ignore[arg-type]
    with pytest.raises(MetricsSinkError, match="strings"):
        sink.log_hparams({1: 2})
    with pytest.raises(MetricsSinkError, match="text"):
        sink.log_long_text("k", 3)  # type: ignore[arg-type]


def test_close_takes_a_whole_exit_code_and_is_idempotent(make, fake):
    sink = make()
    with pytest.raises(MetricsSinkError, match="exit_code"):
        sink.close(exit_code="1")  # type: ignore[arg-type]
    sink.close(exit_code=2)
    sink.close(exit_code=0)
    run = fake.run("e", "p", sink.run_id)
    assert (run["complete"], run["exitcode"]) == (True, 2)
    with pytest.raises(MetricsSinkError, match="close"):
        sink.log_metrics({"x": 1})
    sink.sync()  # harmless after close


def test_url_uses_the_configured_app_url_or_derives_it(make, fake, tmp_path):
    sink = make(run_id="r1", app_url="https://wandb.ai")
    assert sink.get_url() == "https://wandb.ai/e/p/runs/r1"
    derived = make(run_id="r2", run_dir=str(tmp_path / "other"))
    assert derived.get_url() == f"{fake.url}/e/p/runs/r2"  # a self-hosted URL is the UI too


def test_url_waits_for_the_default_entity(make, fake):
    sink = make(entity=None, run_id="r3")
    sink.log_metrics({"x": 1.0})
    sink.close()
    assert sink.get_url() == f"{fake.url}/fakeuser/p/runs/r3"


def test_url_without_entity_is_none_while_the_server_is_unreachable(make):
    sink = make(entity=None, base_url=_dead_url(), close_timeout_s=0.1)
    assert sink.get_url() is None


def test_the_run_identity_is_persisted_without_secrets_and_reused(make, tmp_path):
    first = make(run_name="nice")
    run_id = first.run_id
    first.close()
    info = json.loads((first.spool_dir / "sink.json").read_text())
    assert info["kind"] == "wandb"
    assert info["run_id"] == run_id
    assert info["project"] == "p"
    assert info["entity"] == "e"
    assert "api_key" not in json.dumps(info)
    assert API_KEY not in json.dumps(info)
    again = make()
    assert again.run_id == run_id  # the same run_dir continues the same run


def test_another_run_in_a_run_dir_with_undelivered_rows_is_refused(make, tmp_path):
    first = make(run_id="first", base_url=_dead_url(), close_timeout_s=0.1)
    first.log_metrics({"x": 1.0})
    first.close()
    assert spool_status(first.spool_dir).pending == 1
    with pytest.raises(ConfigurationError, match="logs sync"):
        make(run_id="second")


def test_another_run_in_a_delivered_run_dir_starts_afresh(make, fake):
    first = make(run_id="first")
    first.log_metrics({"x": 1.0})
    first.close()
    second = make(run_id="second")
    second.log_metrics({"x": 2.0})
    second.close()
    assert fake.history_rows("e", "p", "second") == [
        {
            "x": 2.0,
            "_step": 0,
            "_runtime": pytest.approx(0, abs=60),
            "_timestamp": pytest.approx(0, abs=1e10),
        }
    ]
