"""NeptuneMetricsSink against a local fake Neptune server: wire fidelity and fault tolerance.

The first test replays the script of the recorded neptune-client 1.14 session
(``tests/data/neptune/neptune_transcript.jsonl``: a run named ``demo``, a
parameters dict, three ``train/loss`` points, a string field, a tag) and checks what in
that recording matters for a server: the endpoints and their order, which calls carry
the API token and which a Bearer token, the query parameters, the operation names and
the field names inside them. What the SDK sends on top (swagger downloads, the attribute
listing, the notifications websocket, source-code fields) is left out on purpose.

The other tests inject faults (429 with ``Retry-After``, bursts of 500, the server down
for a while, revoked and short-lived access tokens, a restarted process) and check that
every metric point arrives exactly once and in order.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crucible_train.adapters.delivery.spool import spool_status
from crucible_train.adapters.neptune import NeptuneMetricsSink
from crucible_train.adapters.requests_http import RequestsHttpClient
from servers.fake_neptune import CLIENT_ID, FakeNeptune, iter_requests

TRANSCRIPT = Path(__file__).parents[1] / "data" / "neptune" / "neptune_transcript.jsonl"
# Traffic of the SDK that a logger does not need (PROTOCOLS.md B.2).
SDK_ONLY_NOTES = {"swagger:backend", "swagger:leaderboard", "getExperimentAttributes", "UNHANDLED"}
SDK_ONLY_PATHS = {"source_code/entrypoint", "sys/description"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def http() -> Iterator[RequestsHttpClient]:
    client = RequestsHttpClient(pool_size=4, default_timeout=5.0)
    yield client
    client.close()


def make_sink(http, fake, run_dir, **options) -> NeptuneMetricsSink:
    settings: dict[str, Any] = {
        "project": "ws/proj",
        "rate_per_s": 100.0,
        "burst": 10,
        "ping_s": 5.0,
        "close_timeout_s": 15.0,
        "request_timeout_s": 2.0,
        "min_backoff_s": 0.05,
        "max_backoff_s": 0.4,
        **options,
    }
    return NeptuneMetricsSink(http=http, run_dir=str(run_dir), api_token=fake.api_token, **settings)


def recorded() -> list[dict[str, Any]]:
    with open(TRANSCRIPT, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def operation_kind(operation: dict[str, Any]) -> str:
    return next(key for key in operation if key != "path")


def posted_steps(fake: FakeNeptune, path: str) -> list[float]:
    """Steps of ``path`` in every operations request the server accepted, in order."""
    return [
        entry["step"]
        for request in iter_requests(fake, "executeOperations")
        if request["status"] == 200
        for operation in request["json"]
        if operation["path"] == path and "logFloats" in operation
        for entry in operation["logFloats"]["entries"]
    ]


def assert_exactly_once(fake: FakeNeptune, path: str, steps: list[int]) -> None:
    expected = [float(step) for step in steps]
    assert posted_steps(fake, path) == expected  # each point sent once, in order
    assert fake.series_steps(path) == expected  # and stored once, in order


# --- wire fidelity ---------------------------------------------------------------------------


def test_requests_match_the_recorded_sdk_session(http, tmp_path):
    transcript = [r for r in recorded() if r["note"] not in SDK_ONLY_NOTES]
    with FakeNeptune() as fake:
        sink = make_sink(http, fake, tmp_path, run_name="demo", tags=["demo"], ping_s=0.1)
        sink.log_hparams({"lr": 0.0001, "opt": {"name": "adamw"}})
        for step in range(3):
            sink.log_metrics({"train/loss": 0.5}, step=step)
        sink.log_long_text("note", "x")
        assert fake.wait_for(lambda: any(iter_requests(fake, "ping")), timeout=5)
        sink.close()
        ours = list(fake.requests)

    # 1. The same calls in the same order, minus two timing differences: the SDK refreshes
    # its token right after the exchange (we do when it nears expiry) and pings once at
    # start (we ping when idle).
    def sequence(notes: list[str]) -> list[str]:
        kept = [note for note in notes if note not in ("oidc:refresh_token", "ping")]
        return [n for i, n in enumerate(kept) if i == 0 or n != kept[i - 1]]

    assert sequence([r["note"] for r in ours]) == sequence([r["note"] for r in transcript])

    # 2. Paths and query parameters, with ids normalised.
    def shape(method: str, path: str, query: dict[str, str]) -> tuple[str, str, tuple]:
        return method, UUID.sub("<id>", path), tuple(sorted(query))

    recorded_shapes = {}
    for record in transcript:
        path, _, query = record["path"].partition("?")
        keys = {part.split("=")[0]: "" for part in query.split("&") if part}
        recorded_shapes[record["note"]] = shape(record["method"], path, keys)
    for request in ours:
        assert (
            shape(request["method"], request["path"], request["query"])
            == (recorded_shapes[request["note"]])
        ), request["note"]
    config = next(r for r in ours if r["note"] == "getClientConfig")
    assert config["query"] == {"alpha": "true"}
    project = next(r for r in ours if r["note"] == "getProject")
    assert project["query"] == {"projectIdentifier": "ws/proj"}

    # 3. Which calls carry the API token, which a Bearer token, and which neither.
    def auth(headers: dict[str, str]) -> tuple[bool, bool, str | None]:
        return (
            "X-Neptune-Api-Token" in headers,
            headers.get("Authorization", "").startswith("Bearer "),
            headers.get("X-Neptune-LegacyClient"),
        )

    recorded_auth = {r["note"]: auth(r["headers"]) for r in transcript}
    for request in ours:
        has_token, has_bearer, legacy = auth(request["headers"])
        want_token, want_bearer, want_legacy = recorded_auth[request["note"]]
        assert (has_token, has_bearer) == (want_token, want_bearer), request["note"]
        if want_legacy is not None:
            assert legacy == want_legacy, request["note"]
        if has_token:
            assert request["headers"]["X-Neptune-Api-Token"] == fake.api_token

    # 4. The run-creation body: the recorded keys plus our customId.
    recorded_create = next(r for r in transcript if r["note"] == "createExperiment")
    our_create = next(r for r in ours if r["note"] == "createExperiment")
    assert set(our_create["json"]) == set(recorded_create["body"]) | {"customId"}
    assert our_create["json"]["cliVersion"] == recorded_create["body"]["cliVersion"]
    assert (
        our_create["headers"]["X-Neptune-CliVersion"]
        == (recorded_create["headers"]["X-Neptune-CliVersion"])
    )

    # 5. Operation names, field paths and the field names inside each operation.
    def operations(records: list[dict[str, Any]], body_key: str) -> list[dict[str, Any]]:
        return [
            operation
            for record in records
            if record["note"] == "executeOperations"
            for operation in record[body_key]
        ]

    theirs = operations(transcript, "body")
    mine = operations(ours, "json")
    assert {operation_kind(o) for o in mine} == {operation_kind(o) for o in theirs}
    assert {o["path"] for o in mine} == {o["path"] for o in theirs} - SDK_ONLY_PATHS

    def inner_keys(ops: list[dict[str, Any]]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for operation in ops:
            kind = operation_kind(operation)
            body = operation[kind]
            keys = set(body)
            if "entries" in body:
                keys |= {f"entries.{key}" for entry in body["entries"] for key in entry}
            found.setdefault(kind, set()).update(keys)
        return found

    assert inner_keys(mine) == inner_keys(theirs)
    by_path = {o["path"]: o for o in mine}
    recorded_by_path = {o["path"]: o for o in theirs}
    for path in ("sys/name", "sys/failed", "parameters/lr", "parameters/opt/name", "note"):
        assert by_path[path] == recorded_by_path[path]
    assert by_path["sys/tags"] == recorded_by_path["sys/tags"]
    assert [e["step"] for e in by_path["train/loss"]["logFloats"]["entries"]] == [0.0, 1.0, 2.0]


# --- faults ----------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured(http, tmp_path):
    with FakeNeptune() as fake:
        fake.fail("executeOperations", 429, count=1, retry_after=1)
        sink = make_sink(http, fake, tmp_path)
        for step in range(5):
            sink.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        sink.close()
        operations = list(iter_requests(fake, "executeOperations"))
    refused, retried = operations[0], operations[1]
    assert refused["status"] == 429
    assert retried["t"] - refused["t"] >= 0.95  # Retry-After: 1 beats the 0.05 s back-off
    assert_exactly_once(fake, "loss", list(range(5)))


def test_a_burst_of_500s_loses_and_duplicates_nothing(http, tmp_path):
    with FakeNeptune() as fake:
        fake.fail("createExperiment", 500, count=2)
        fake.fail("executeOperations", 503, count=3)
        sink = make_sink(http, fake, tmp_path)
        for step in range(20):
            sink.log_metrics({"loss": float(step), "acc": step / 20}, step=step)
        sink.close()
        statuses = [r["status"] for r in fake.requests if r["note"] == "createExperiment"]
    assert statuses == [500, 500, 200]
    assert len(fake.runs) == 1
    assert_exactly_once(fake, "loss", list(range(20)))
    assert_exactly_once(fake, "acc", list(range(20)))


def test_server_down_for_a_while_then_back(http, tmp_path):
    with FakeNeptune() as fake:
        sink = make_sink(http, fake, tmp_path, rate_per_s=20.0)
        for step in range(5):
            sink.log_metrics({"loss": float(step)}, step=step)
        assert fake.wait_for(lambda: len(fake.series_steps("loss")) == 5, timeout=5)
        fake.down_for(1.5)
        for step in range(5, 30):
            sink.log_metrics({"loss": float(step)}, step=step)
            time.sleep(0.05)
        sink.close()
    assert_exactly_once(fake, "loss", list(range(30)))


def test_short_lived_tokens_are_refreshed_at_the_issuer(http, tmp_path):
    with FakeNeptune(token_ttl=31) as fake:  # 1 s before the 30 s refresh margin
        sink = make_sink(http, fake, tmp_path, ping_s=0.2)
        sink.log_metrics({"loss": 1.0}, step=0)
        assert fake.wait_for(
            lambda: len(list(iter_requests(fake, "oidc:refresh_token"))) >= 2, timeout=5
        )
        sink.log_metrics({"loss": 0.5}, step=1)
        sink.close()
        refreshes = list(iter_requests(fake, "oidc:refresh_token"))
        statuses = {r["status"] for r in fake.requests}
    assert refreshes[0]["path"] == "/auth/realms/neptune/protocol/openid-connect/token"
    assert refreshes[0]["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert refreshes[0]["form"]["grant_type"] == "refresh_token"
    assert refreshes[0]["form"]["client_id"] == CLIENT_ID
    assert 401 not in statuses  # refreshed before expiry, never after
    assert_exactly_once(fake, "loss", [0, 1])


def test_a_revoked_access_token_is_refreshed_after_one_401(http, tmp_path):
    with FakeNeptune() as fake:
        sink = make_sink(http, fake, tmp_path)
        sink.log_metrics({"loss": 1.0}, step=0)
        assert fake.wait_for(lambda: fake.series_steps("loss") == [0.0], timeout=5)
        fake.expire_access_tokens()
        sink.log_metrics({"loss": 0.5}, step=1)
        sink.close()
        statuses = [r["status"] for r in iter_requests(fake, "executeOperations")]
        refreshes = list(iter_requests(fake, "oidc:refresh_token"))
    assert statuses.count(401) == 1
    assert len(refreshes) == 1
    assert_exactly_once(fake, "loss", [0, 1])


def test_a_restarted_process_resumes_the_same_run_and_delivers_its_spool(http, tmp_path):
    with FakeNeptune() as fake:
        first = make_sink(http, fake, tmp_path, run_name="resumable", close_timeout_s=0.3)
        for step in range(3):
            first.log_metrics({"loss": float(step)}, step=step)
        assert fake.wait_for(lambda: len(fake.series_steps("loss")) == 3, timeout=5)
        url = first.get_url()
        fake.down_for(60)
        for step in range(3, 6):
            first.log_metrics({"loss": float(step)}, step=step)
        first.close()  # gives up after 0.3 s: steps 3..5 stay in the spool, as after a crash

        fake.down_for(0)
        second = make_sink(http, fake, tmp_path, run_name="resumable")
        for step in range(6, 9):
            second.log_metrics({"loss": float(step)}, step=step)
        second.close()
        creates = list(iter_requests(fake, "createExperiment"))
    assert len(fake.runs) == 1
    assert {r["json"]["customId"] for r in creates} == {fake.only_run()["customId"]}
    assert second.get_url() == url
    assert_exactly_once(fake, "loss", list(range(9)))


CRASHING_SCRIPT = """
import os, sys
from crucible_train.adapters.delivery.spool import spool_status
from crucible_train.adapters.neptune import NeptuneMetricsSink
from crucible_train.adapters.requests_http import RequestsHttpClient

run_dir, token = sys.argv[1], sys.argv[2]
sink = NeptuneMetricsSink(
    http=RequestsHttpClient(), run_dir=run_dir, api_token=token, project="ws/proj",
    rate_per_s=2.0, burst=1,
)
for step in range(40):
    sink.log_metrics({"loss": float(step)}, step=step)
sink.sync()  # every row is on disk; most are not delivered yet (2 requests per second)
os._exit(1)  # die without close(): no flush, no finish
"""


def test_a_crashed_process_is_finished_by_logs_sync_and_resumed(http, tmp_path, caplog):
    with FakeNeptune() as fake:
        subprocess.run(
            [sys.executable, "-c", CRASHING_SCRIPT, str(tmp_path), fake.api_token],
            check=False,
            timeout=60,
        )
        spool = tmp_path / "spool" / "neptune"
        assert spool_status(spool).pending > 0
        # `crucible-train logs sync` delivers the rest and, the exit code being unknown,
        # marks the run failed.
        left = NeptuneMetricsSink.sync_spool(
            spool, http=http, environ={"NEPTUNE_API_TOKEN": fake.api_token}, timeout=10.0
        )
        assert left == 0
        assert fake.series_steps("loss") == [float(step) for step in range(40)]
        assert fake.only_run()["fields"]["sys/failed"] == ("assignBool", True)

        # Training restarts in the same directory: same run, sys/failed back to false.
        with caplog.at_level(logging.INFO):
            sink = make_sink(http, fake, tmp_path)
            sink.log_metrics({"loss": 40.0}, step=40)
            # close() right away: a sender reopened on a spool that logs sync finished
            # must still deliver this session's rows before it returns.
            sink.close()
        run = fake.only_run()
    assert len(fake.runs) == 1
    assert run["fields"]["sys/failed"] == ("assignBool", False)
    assert fake.series_steps("loss") == [float(step) for step in range(41)]
    assert "logSeriesValueError" not in caplog.text.replace("expected after a restart", "")
