"""Unit tests for NeptuneMetricsSink: construction checks, what each call writes, secrets.

The sink runs its real background sender against :class:`FakeNeptune` (a local
``http.server``), so these tests check end state on the "server" rather than calls.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from crucible_train.adapters.delivery.spool import spool_dir_for, spool_status
from crucible_train.adapters.neptune import NeptuneMetricsSink
from crucible_train.adapters.neptune._operations import MAX_STRING_LENGTH
from crucible_train.adapters.requests_http import RequestsHttpClient
from crucible_train.errors import ConfigurationError, MetricsSinkError, MissingSecretError
from crucible_train.ports.metrics import MetricsSink
from servers.fake_neptune import API_KEY, FakeNeptune, iter_requests, make_api_token


@pytest.fixture
def fake() -> Iterator[FakeNeptune]:
    with FakeNeptune() as server:
        yield server


@pytest.fixture
def http() -> Iterator[RequestsHttpClient]:
    client = RequestsHttpClient(pool_size=4, default_timeout=5.0)
    yield client
    client.close()


def make_sink(http, run_dir, token, **options) -> NeptuneMetricsSink:
    settings = {
        "project": "ws/proj",
        "rate_per_s": 100.0,
        "burst": 10,
        "ping_s": 5.0,
        "close_timeout_s": 10.0,
        "request_timeout_s": 2.0,
        **options,
    }
    return NeptuneMetricsSink(http=http, run_dir=str(run_dir), api_token=token, **settings)


def every_file_text(root: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in root.rglob("*") if path.is_file())


# --- construction ---------------------------------------------------------------------------


def test_is_a_metrics_sink(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token)
    assert isinstance(sink, MetricsSink)
    sink.close()


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_names_the_variable(http, tmp_path, token):
    with pytest.raises(MissingSecretError, match="NEPTUNE_API_TOKEN"):
        make_sink(http, tmp_path, token)


def test_malformed_token_is_refused_without_echo(http, tmp_path):
    token = base64.b64encode(b"{not json " + API_KEY.encode()).decode()
    with pytest.raises(ConfigurationError, match="not JSON") as info:
        make_sink(http, tmp_path, token)
    assert token not in str(info.value)
    assert API_KEY not in str(info.value)
    assert not (tmp_path / "spool").exists()


def test_project_must_be_workspace_slash_project(fake, http, tmp_path):
    with pytest.raises(ConfigurationError, match="workspace/project"):
        make_sink(http, tmp_path, fake.api_token, project="just-a-project")


def test_bad_options_are_reported_together(fake, http, tmp_path):
    with pytest.raises(ConfigurationError) as info:
        make_sink(http, tmp_path, fake.api_token, rate_per_s=0, burst=0, ping_s=math.inf)
    assert list(info.value.problems) == [
        "Neptune sink: rate_per_s is 0; use a finite number > 0",
        "Neptune sink: ping_s is inf; use a finite number > 0",
        "Neptune sink: burst is 0; use a whole number >= 1",
    ]


def test_construction_does_no_network_io_and_never_blocks(http, tmp_path):
    # Nothing listens on port 9: the sink must still build, log and close promptly.
    sink = make_sink(http, tmp_path, make_api_token("http://127.0.0.1:9"), close_timeout_s=0.2)
    sink.log_metrics({"loss": 1.0}, step=0)
    sink.sync()
    assert sink.get_url() is None
    sink.close()
    assert spool_status(spool_dir_for(tmp_path, "neptune")).pending == 2


# --- what each call writes --------------------------------------------------------------------


def test_a_run_writes_what_the_sdk_writes(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token, run_name="demo", tags=["sft", "demo"])
    sink.log_hparams({"lr": 1e-4, "opt": {"name": "adamw"}, "epochs": 3, "fused": True})
    sink.log_metrics({"train/loss": 0.5, "done": False, "phase": "warmup"}, step=0)
    sink.log_metrics({"train/loss": 0.25}, step=1)
    sink.log_long_text("samples/0", "a transcript\nwith lines")
    sink.close()

    run = fake.only_run()
    assert run["fields"] == {
        "sys/name": ("assignString", "demo"),
        "sys/failed": ("assignBool", False),
        "parameters/lr": ("assignFloat", 1e-4),
        "parameters/opt/name": ("assignString", "adamw"),
        "parameters/epochs": ("assignInt", 3),
        "parameters/fused": ("assignBool", True),
        "samples/0": ("assignString", "a transcript\nwith lines"),
    }
    assert run["tags"] == {"sft", "demo"}
    assert [(p["step"], p["value"]) for p in run["series"]["train/loss"]] == [
        (0.0, 0.5),
        (1.0, 0.25),
    ]
    assert run["series"]["done"][0]["value"] == 0.0
    assert run["series"]["phase"][0] == {
        "value": "warmup",
        "step": 0.0,
        "timestampMilliseconds": run["series"]["phase"][0]["timestampMilliseconds"],
        "kind": "logStrings",
    }
    assert run["customId"].startswith("crucible-")
    # The first operations request starts like the SDK's: sys/name, then sys/failed=false.
    first = next(iter_requests(fake, "executeOperations"))["json"]
    assert first[:2] == [
        {"path": "sys/name", "assignString": {"value": "demo"}},
        {"path": "sys/failed", "assignBool": {"value": False}},
    ]


def test_url_names_workspace_project_and_short_id(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token)
    sink.sync()
    sink.log_metrics({"a": 1.0}, step=0)
    sink.close()
    assert sink.get_url() == f"{fake.url}/app/ws/proj/e/PROJ-1"


def test_non_zero_exit_code_marks_the_run_failed(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token)
    sink.log_metrics({"loss": 1.0}, step=0)
    sink.close(exit_code=3)
    assert fake.only_run()["fields"]["sys/failed"] == ("assignBool", True)
    last = list(iter_requests(fake, "executeOperations"))[-1]["json"]
    assert last == [{"path": "sys/failed", "assignBool": {"value": True}}]


def test_steps_default_to_the_next_one(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token)
    sink.log_metrics({"a": 1.0})
    sink.log_metrics({"a": 2.0})
    sink.log_metrics({"a": 3.0}, step=10)
    sink.log_metrics({"a": 4.0})
    sink.close()
    assert fake.series_steps("a") == [0.0, 1.0, 10.0, 11.0]


def test_non_finite_values_are_skipped_and_reported_once(fake, http, tmp_path, caplog):
    sink = make_sink(http, tmp_path, fake.api_token)
    with caplog.at_level(logging.WARNING):
        sink.log_metrics({"loss": math.nan, "acc": 0.5}, step=0)
        sink.log_metrics({"loss": math.inf, "acc": 0.6}, step=1)
        sink.log_metrics({"loss": 0.1, "acc": 0.7}, step=2)
    sink.close()
    assert fake.series_steps("loss") == [2.0]
    assert fake.series_steps("acc") == [0.0, 1.0, 2.0]
    assert caplog.text.count("non-finite") == 1


def test_long_text_is_cut_and_reported_once(fake, http, tmp_path, caplog):
    sink = make_sink(http, tmp_path, fake.api_token)
    with caplog.at_level(logging.WARNING):
        sink.log_long_text("prompt", "x" * (MAX_STRING_LENGTH + 10))
        sink.log_long_text("prompt", "y" * (MAX_STRING_LENGTH + 10))
    sink.close()
    kind, value = fake.only_run()["fields"]["prompt"]
    assert (kind, value) == ("assignString", "y" * MAX_STRING_LENGTH)
    assert caplog.text.count("keep the first 16384") == 1


def test_heartbeat_pings_while_idle(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token, ping_s=0.2)
    sink.log_metrics({"a": 1.0}, step=0)
    assert fake.wait_for(lambda: len(list(iter_requests(fake, "ping"))) >= 2, timeout=5.0)
    sink.close()
    ping = next(iter_requests(fake, "ping"))
    assert ping["headers"]["Authorization"].startswith("Bearer ")
    assert ping["raw"] == b""


def test_calls_are_validated(fake, http, tmp_path):
    sink = make_sink(http, tmp_path, fake.api_token)
    with pytest.raises(MetricsSinkError, match="step"):
        sink.log_metrics({"a": 1.0}, step=-1)
    with pytest.raises(MetricsSinkError, match="name"):
        sink.log_metrics({1: 1.0})
    with pytest.raises(MetricsSinkError, match="number or a short string"):
        sink.log_metrics({"a": [1.0]})
    with pytest.raises(MetricsSinkError, match="mapping"):
        sink.log_hparams([("a", 1)])
    with pytest.raises(MetricsSinkError, match="string key"):
        sink.log_long_text("k", b"bytes")
    sink.close()
    with pytest.raises(MetricsSinkError, match="close"):
        sink.log_metrics({"a": 1.0}, step=0)


# --- failures ---------------------------------------------------------------------------------


def test_rejected_token_stops_delivery_with_a_clear_logged_error(fake, http, tmp_path, caplog):
    wrong = make_api_token(fake.url, api_key="wrong-key")
    with caplog.at_level(logging.ERROR):
        sink = make_sink(http, tmp_path, wrong, close_timeout_s=2.0)
        sink.log_metrics({"a": 1.0}, step=0)
        sink.close()
    assert "rejected the API token" in (sink.delivery_error or "")
    assert "NEPTUNE_API_TOKEN" in caplog.text
    assert wrong not in caplog.text
    assert "logs sync" in caplog.text
    assert spool_status(spool_dir_for(tmp_path, "neptune")).pending == 2
    assert not fake.runs


def test_missing_project_is_named_in_the_error(fake, http, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        sink = make_sink(http, tmp_path, fake.api_token, project="ws/nope")
        sink.close()
    assert "'ws/nope' was not found" in (sink.delivery_error or "")
    assert "'ws/nope' was not found" in caplog.text


def test_secrets_never_reach_files_logs_or_reprs(http, tmp_path, caplog):
    with FakeNeptune(token_ttl=25) as fake:  # under the 30 s margin: every call refreshes
        with caplog.at_level(logging.DEBUG):
            sink = make_sink(http, tmp_path, fake.api_token, run_name="secret-free")
            sink.log_hparams({"lr": 0.1})
            sink.log_metrics({"a": 1.0}, step=0)
            sink.close(exit_code=1)
        access = [
            r["headers"]["Authorization"].removeprefix("Bearer ")
            for r in fake.requests
            if "Authorization" in r["headers"]
        ]
        refresh = [r["form"]["refresh_token"] for r in iter_requests(fake, "oidc:refresh_token")]
    assert access
    assert refresh
    texts = [every_file_text(tmp_path), caplog.text, repr(sink), str(sink)]
    for secret in [fake.api_token, API_KEY, *access, *refresh]:
        for text in texts:
            assert secret not in text


# --- logs sync --------------------------------------------------------------------------------


def test_logs_sync_delivers_what_close_left_behind(fake, http, tmp_path):
    fake.down_for(60)
    sink = make_sink(http, tmp_path, fake.api_token, close_timeout_s=0.3)
    sink.log_metrics({"loss": 1.0}, step=0)
    sink.log_metrics({"loss": 0.5}, step=1)
    sink.close(exit_code=2)
    spool = spool_dir_for(tmp_path, "neptune")
    assert spool_status(spool).pending == 3
    info = json.loads((spool / "sink.json").read_text())
    assert set(info) == {"kind", "custom_id", "project", "api_url"}

    fake.down_for(0)
    with pytest.raises(MissingSecretError, match="NEPTUNE_API_TOKEN"):
        NeptuneMetricsSink.sync_spool(spool, http=http, environ={}, timeout=1.0)
    # What `crucible-train logs sync RUN_DIR` calls for a spool whose kind is "neptune":
    left = NeptuneMetricsSink.sync_spool(
        spool, http=http, environ={"NEPTUNE_API_TOKEN": fake.api_token}, timeout=10.0
    )
    assert left == 0
    run = fake.only_run()
    assert run["customId"] == info["custom_id"]
    assert fake.series_steps("loss") == [0.0, 1.0]
    assert run["fields"]["sys/failed"] == ("assignBool", True)  # exit code 2 was recorded


def test_resume_transport_refuses_another_sinks_spool(http, tmp_path):
    spool = tmp_path / "spool" / "wandb"
    spool.mkdir(parents=True)
    (spool / "sink.json").write_text(json.dumps({"kind": "wandb"}))
    with pytest.raises(ConfigurationError, match="not Neptune"):
        NeptuneMetricsSink.resume_transport(spool, http=http, environ={})
