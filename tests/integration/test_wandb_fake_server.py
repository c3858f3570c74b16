"""The W&B sink against a real (fake) W&B server over loopback: sequence, faults, restarts.

Checks the request sequence against what the recorded wandb 0.31.0 transcripts show
matters (paths, Basic auth, field names, contiguous offsets, wrapped config, finish), then
delivery under faults: 429 with ``Retry-After``, bursts of 500s, timeouts with lost
answers, the server down for 10 s, a process restart and a crash followed by
``crucible-train logs sync``. Every time: each row arrives exactly once, in order, at
contiguous offsets, and the key never shows up in a file or a log line.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.delivery.spool import spool_status
from crucible_train.adapters.requests_http import RequestsHttpClient
from crucible_train.adapters.wandb import WandbMetricsSink
from crucible_train.container import BACKENDS
from crucible_train.entrypoints.cli import main as cli
from servers.fake_wandb import API_KEY, FakeWandb

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "wandb"
SECRETS = (
    API_KEY,
    base64.b64encode(f"api:{API_KEY}".encode()).decode(),
)


def _recorded(name: str = "wandb_transcript.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (TRANSCRIPTS / name).read_text().splitlines()]


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
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def make(fake: FakeWandb, http: RequestsHttpClient, run_dir: Path) -> Iterator[Any]:
    made: list[WandbMetricsSink] = []

    def build(**options: Any) -> WandbMetricsSink:
        settings: dict[str, Any] = {
            "http": http,
            "run_dir": str(run_dir),
            "api_key": API_KEY,
            "project": "p",
            "entity": "e",
            "base_url": fake.url,
            "rate_per_s": 50.0,
            "burst": 10,
            "heartbeat_s": 30.0,
            "close_timeout_s": 10.0,
            "min_backoff_s": 0.1,
            "max_backoff_s": 0.5,
            "request_timeout_s": 2.0,
        }
        settings.update(options)
        sink = WandbMetricsSink(**settings)
        made.append(sink)
        return sink

    yield build
    for sink in made:
        sink.close()


@pytest.fixture
def wandb_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """``logs sync`` finds sink classes in the container's diagram; W&B must be there."""
    assert BACKENDS["metrics"]["wandb"].adapter is WandbMetricsSink
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)


def _assert_exactly_once(fake: FakeWandb, run_id: str, expected: list[float]) -> None:
    rows = fake.history_rows("e", "p", run_id)  # asserts contiguous offsets
    assert [row["i"] for row in rows] == expected
    assert [row["_step"] for row in rows] == list(range(len(expected)))
    assert fake.conflicts == []


def _assert_no_secret_anywhere(run_dir: Path, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, path


# --- the request sequence -----------------------------------------------------------------


def test_a_run_sends_what_the_recorded_sdk_sends(make, fake, run_dir, caplog):
    caplog.set_level(logging.DEBUG)
    sink = make(run_name="fake-run")
    sink.log_hparams({"lr": 1e-4, "opt": {"name": "adamw"}})
    for step in range(3):
        sink.log_metrics({"loss": 0.5 - step / 10}, step=step)
    sink.log_long_text("note", "x")
    sink.close()

    kinds = [r["kind"] for r in fake.requests]
    assert kinds[:2] == ["Viewer", "UpsertBucket"]  # as recorded: Viewer first, then create
    assert kinds[-1] == "file_stream"
    recorded = _recorded()
    recorded_paths = {r["path"].replace("jo8ndzhp", "RUN") for r in recorded}
    ours = {r["path"].replace(sink.run_id, "RUN") for r in fake.requests}
    assert ours <= recorded_paths  # only /graphql and /files/e/p/RUN/file_stream
    for request in fake.requests:
        assert request["headers"]["Authorization"].startswith("Basic ")
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["method"] == "POST"
    recorded_fields = {key for r in recorded if r["note"] == "file_stream" for key in r["body"]}
    recorded_files = {
        name for r in recorded if r["note"] == "file_stream" for name in r["body"].get("files", {})
    }
    for request in fake.requests_of("file_stream"):
        assert set(request["body"]) <= recorded_fields
        assert set(request["body"].get("files", {})) <= recorded_files
    assert fake.requests[-1]["body"] == {"complete": True, "exitcode": 0}

    run = fake.run("e", "p", sink.run_id)
    rows = fake.history_rows("e", "p", sink.run_id)
    assert [(row["_step"], row["loss"]) for row in rows] == [(0, 0.5), (1, 0.4), (2, 0.3)]
    assert run["config"] == {"lr": {"value": 0.0001}, "opt": {"value": {"name": "adamw"}}}
    assert run["summary"]["loss"] == 0.3
    assert run["summary"]["note"] == "x"
    assert run["summary"]["_step"] == 2
    assert run["display_name"] == "fake-run"
    assert (run["complete"], run["exitcode"]) == (True, 0)
    assert sink.get_url() == f"{fake.url}/e/p/runs/{sink.run_id}"
    _assert_no_secret_anywhere(run_dir, caplog.text)


def test_rows_are_batched_under_the_rate_limit(make, fake):
    sink = make(rate_per_s=2.0, burst=2)
    started = time.monotonic()
    for i in range(200):
        sink.log_metrics({"i": float(i)})
    sink.close()
    assert time.monotonic() - started < 5
    _assert_exactly_once(fake, sink.run_id, [float(i) for i in range(200)])
    history_posts = [r for r in fake.requests_of("file_stream") if "files" in (r["body"] or {})]
    assert len(history_posts) <= 4  # 200 rows, a handful of requests: a bucket, not a loop


def test_heartbeat_when_idle(make, fake):
    sink = make(heartbeat_s=0.3)
    sink.log_metrics({"i": 0.0})
    assert sink.sender.flush(5) == 0
    deadline = time.monotonic() + 5
    while fake.run("e", "p", sink.run_id)["heartbeats"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.close()
    assert fake.run("e", "p", sink.run_id)["heartbeats"] >= 2


# --- faults ----------------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(make, fake):
    fake.fail("file_stream", 429, retry_after=1)
    sink = make()
    sink.log_metrics({"i": 0.0})
    sink.close()
    posts = fake.requests_of("file_stream")
    assert posts[0]["status"] == 429
    gap = posts[1]["t"] - posts[0]["t"]
    assert 0.9 <= gap <= 2.0, gap  # Retry-After: 1, not the 0.1 s back-off
    _assert_exactly_once(fake, sink.run_id, [0.0])


def test_a_burst_of_500s_is_retried_with_growing_back_off(make, fake):
    fake.fail("file_stream", 500, count=5)
    sink = make(min_backoff_s=0.05, max_backoff_s=1.0)
    for i in range(20):
        sink.log_metrics({"i": float(i)})
    sink.close()
    posts = fake.requests_of("file_stream")
    assert [p["status"] for p in posts[:6]] == [500] * 5 + [200]
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(posts[:6])]
    # The fifth wait is at least min_backoff_s * 2**4 (jitter only lengthens it); a lower
    # bound holds on a loaded machine, where comparing two measured gaps would not.
    assert gaps[-1] >= 0.05 * 2**4
    _assert_exactly_once(fake, sink.run_id, [float(i) for i in range(20)])


def test_timeouts_with_lost_answers_store_nothing_twice(make, fake):
    # The server applies the request after the client gave up: the answer is lost, the
    # rows are sent again at the same offsets, and the history still holds each once.
    fake.delay_next("file_stream", 1.0, count=2)
    sink = make(request_timeout_s=0.3)
    for i in range(10):
        sink.log_metrics({"i": float(i)})
    sink.close()
    time.sleep(1.2)  # let the delayed requests land
    offsets = [
        r["body"]["files"]["wandb-history.jsonl"]["offset"]
        for r in fake.requests_of("file_stream")
        if "wandb-history.jsonl" in (r["body"] or {}).get("files", {})
    ]
    assert len(offsets) > len(set(offsets))  # some offset really was sent twice
    _assert_exactly_once(fake, sink.run_id, [float(i) for i in range(10)])


@pytest.mark.slow
def test_the_server_down_for_10_seconds_loses_nothing(make, fake, caplog):
    sink = make(min_backoff_s=0.2, max_backoff_s=1.0, close_timeout_s=15.0)
    sink.log_metrics({"i": 0.0})
    assert sink.sender.flush(5) == 0
    fake.down_for(10.0, mode="refuse")
    started = time.monotonic()
    i = 1
    while time.monotonic() - started < 11.0:
        sink.log_metrics({"i": float(i)})
        i += 1
        time.sleep(0.05)
    sink.close()
    _assert_exactly_once(fake, sink.run_id, [float(n) for n in range(i)])
    assert fake.run("e", "p", sink.run_id)["complete"] is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "retrying" in w.getMessage()]) == 1  # once per outage


def test_dropped_connections_are_retried(make, fake):
    sink = make()
    sink.log_metrics({"i": 0.0})
    assert sink.sender.flush(5) == 0
    fake.down_for(1.0, mode="drop")
    for i in range(1, 30):
        sink.log_metrics({"i": float(i)})
    sink.close()
    _assert_exactly_once(fake, sink.run_id, [float(i) for i in range(30)])


def test_close_returns_within_its_timeout_while_down_and_reports_the_spool(
    make, fake, run_dir, caplog
):
    fake.down_for(30.0, mode="refuse")
    sink = make(close_timeout_s=1.0)
    for i in range(25):
        sink.log_metrics({"i": float(i)})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        sink.close()
    assert time.monotonic() - started < 2.5
    assert sink.sender.pending_count == 25
    assert spool_status(sink.spool_dir).pending == 25
    message = caplog.records[-1].getMessage()
    assert "25 rows are still spooled" in message
    assert f"crucible-train logs sync {run_dir}" in message


# --- restarts ----------------------------------------------------------------------------------


def test_rows_left_by_a_closed_sink_are_delivered_by_logs_sync(
    make, fake, run_dir, wandb_registered, capsys
):
    sink = make(close_timeout_s=0.3)
    sink.log_hparams({"lr": 0.1})
    sink.log_metrics({"i": 0.0})
    assert sink.sender.flush(5) == 0  # offset 0 delivered live
    fake.down_for(1.5, mode="refuse")
    for i in range(1, 20):
        sink.log_metrics({"i": float(i)})
    sink.close(exit_code=0)  # gives up after 0.3 s: the rest stays spooled
    assert sink.sender.pending_count == 19
    assert fake.run("e", "p", sink.run_id)["complete"] is False
    time.sleep(1.5)
    assert cli.main(["logs", "sync", str(run_dir), "--timeout", "10"]) == 0
    assert "wandb: everything delivered" in capsys.readouterr().out
    _assert_exactly_once(fake, sink.run_id, [float(i) for i in range(20)])
    run = fake.run("e", "p", sink.run_id)
    assert (run["complete"], run["exitcode"]) == (True, 0)
    assert cli.main(["logs", "sync", str(run_dir)]) == 0  # nothing left: no requests
    assert fake.requests[-1]["kind"] == "file_stream"


def test_logs_sync_after_a_crash_delivers_once_with_the_right_offsets(
    fake, run_dir, wandb_registered, capsys, tmp_path
):
    # A live run logs 3 rows (offsets 0-2); then the server goes down and the process dies
    # (os._exit, no close) with 30 more rows spooled.
    script = textwrap.dedent(
        """
        import os, sys, time
        from crucible_train.adapters.requests_http import RequestsHttpClient
        from crucible_train.adapters.wandb import WandbMetricsSink
        url, run_dir, key, marker = sys.argv[1:5]
        sink = WandbMetricsSink(http=RequestsHttpClient(), run_dir=run_dir, api_key=key,
                                project="p", entity="e", base_url=url, rate_per_s=50,
                                burst=10, min_backoff_s=0.1, max_backoff_s=0.3)
        sink.log_hparams({"lr": 0.5})
        for i in range(3):
            sink.log_metrics({"i": float(i)})
        assert sink.sender.flush(10) == 0
        open(marker, "w").close()
        while os.path.exists(marker):  # the test takes the server down meanwhile
            time.sleep(0.02)
        for i in range(3, 33):
            sink.log_metrics({"i": float(i)})
        sink.log_long_text("sample", "after the outage")
        sink.sync()  # on disk; nothing more
        print(sink.run_id, flush=True)
        os._exit(0)
        """
    )
    marker = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", script, fake.url, str(run_dir), API_KEY, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    fake.down_for(1.0, mode="refuse")
    marker.unlink()
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    run_id = out.strip()
    assert spool_status(run_dir / "spool" / "wandb").pending == 31
    time.sleep(1.2)  # the server is back
    assert cli.main(["logs", "sync", str(run_dir), "--timeout", "10"]) == 0
    _assert_exactly_once(fake, run_id, [float(i) for i in range(33)])
    run = fake.run("e", "p", run_id)
    assert run["summary"]["sample"] == "after the outage"
    assert run["config"] == {"lr": {"value": 0.5}}
    # The process died before close: the run is marked failed (the documented choice).
    assert (run["complete"], run["exitcode"]) == (True, 1)
    _assert_no_secret_anywhere(run_dir, out + err + capsys.readouterr().out)


def test_logs_sync_reports_rows_left_and_configuration_errors(
    make, fake, run_dir, wandb_registered, monkeypatch, capsys
):
    fake.down_for(30.0, mode="refuse")
    sink = make(close_timeout_s=0.2)
    sink.log_metrics({"i": 0.0})
    sink.close()
    assert cli.main(["logs", "sync", str(run_dir), "--timeout", "0.5"]) == 3
    assert "1 rows still spooled" in capsys.readouterr().out
    monkeypatch.delenv("WANDB_API_KEY")
    assert cli.main(["logs", "sync", str(run_dir)]) == 2
    assert "WANDB_API_KEY" in capsys.readouterr().err


def test_a_rejected_key_stops_delivery_and_is_never_logged(make, fake, run_dir, caplog):
    fake.echo_auth = True  # the server quotes the Authorization header in its 401 message
    caplog.set_level(logging.DEBUG)
    wrong = "wrongkey" + API_KEY[8:]
    sink = make(api_key=wrong)
    sink.log_metrics({"i": 0.0})
    sink.close()
    assert sink.sender.stopped is not None
    assert "WANDB_API_KEY" in sink.sender.stopped
    assert sink.sender.pending_count == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "logs sync" in errors[0]
    wrong_secrets = (wrong, base64.b64encode(f"api:{wrong}".encode()).decode())
    for secret in wrong_secrets:
        assert secret not in caplog.text
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes()
