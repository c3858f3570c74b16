"""Unit tests for the W&B wire protocol: every request shape, checked with ``responses``.

The transport is driven directly (no threads) with spooled rows; the expected shapes come
from the recorded wandb 0.31.0 transcripts in ``tests/data/wandb`` (``PROTOCOLS.md``
part A): GraphQL ``Viewer`` and ``UpsertBucket``, file_stream history/summary/heartbeat/
finish bodies, Basic ``api:KEY`` auth.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from crucible_train.adapters.delivery.transport import SpooledRow
from crucible_train.adapters.requests_http import RequestsHttpClient
from crucible_train.adapters.wandb import transport as wandb_transport
from crucible_train.adapters.wandb.metrics_sink import generate_run_id
from crucible_train.adapters.wandb.transport import WandbTransport, api_to_app_url
from crucible_train.errors import PermanentHttpError, RetryableHttpError

BASE = "https://wandb.example"
KEY = "0123456789abcdef0123456789abcdef01234567"
GRAPHQL = f"{BASE}/graphql"
CREATED = 1_700_000_000.0
TRANSCRIPTS = Path(__file__).resolve().parents[3] / "data" / "wandb"


def _recorded(name: str) -> list[dict[str, Any]]:
    path = TRANSCRIPTS / name
    return [json.loads(line) for line in path.read_text().splitlines()]


class FakeApi:
    """A ``responses`` callback for /graphql and file_stream that records bodies."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.viewer: Any = {"id": "VXNlcjox", "entity": "default-team", "teams": {"edges": []}}
        self.bucket: dict[str, Any] = {}
        self.graphql_errors: list[dict[str, Any]] | None = None
        self.file_stream_status = 200

    def graphql(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        self.calls.append({"kind": body["operationName"], "body": body, "headers": request.headers})
        if self.graphql_errors is not None:
            return 200, {}, json.dumps({"errors": self.graphql_errors})
        if body["operationName"] == "Viewer":
            return 200, {}, json.dumps({"data": {"viewer": self.viewer}})
        variables = body["variables"]
        bucket = {
            "id": "UnVuOnYxOmZha2U=",
            "name": variables["name"],
            "displayName": variables.get("displayName") or "fancy-sun-1",
            "config": None,
            "historyLineCount": 0,
            "summaryMetrics": None,
            "project": {"name": variables["project"], "entity": {"name": variables["entity"]}},
        }
        bucket.update(self.bucket)
        return 200, {}, json.dumps({"data": {"upsertBucket": {"bucket": bucket, "inserted": True}}})

    def file_stream(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        self.calls.append(
            {"kind": "file_stream", "body": body, "headers": request.headers, "url": request.url}
        )
        if self.file_stream_status != 200:
            return self.file_stream_status, {}, json.dumps({"error": "injected"})
        return 200, {}, json.dumps({"exitcode": None, "limits": {}})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["kind"] == kind]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, GRAPHQL, callback=fake.graphql)
        mock.add_callback(
            responses.POST, re.compile(rf"{BASE}/files/.*/file_stream"), callback=fake.file_stream
        )
        yield fake


@pytest.fixture
def http() -> Iterator[RequestsHttpClient]:
    client = RequestsHttpClient(pool_size=1, default_timeout=5.0)
    yield client
    client.close()


def make(http: RequestsHttpClient, **options: Any) -> WandbTransport:
    settings: dict[str, Any] = {
        "http": http,
        "api_key": KEY,
        "base_url": BASE,
        "project": "p",
        "entity": "e",
        "run_id": "abc12345",
        "display_name": None,
        "created_at": CREATED,
    }
    settings.update(options)
    return WandbTransport(**settings)


def metrics(seq: int, values: dict[str, Any], step: int | None = None, at: float = 1.0):
    return SpooledRow(
        seq=seq, kind="metrics", payload={"metrics": values, "step": step}, time=CREATED + at
    )


def lines_of(call: dict[str, Any], name: str) -> tuple[int, list[Any]]:
    part = call["body"]["files"][name]
    return part["offset"], [json.loads(line) for line in part["content"]]


# --- GraphQL -----------------------------------------------------------------------------


def test_viewer_then_upsert_bucket_with_basic_auth(api, http):
    state = make(http, display_name="my run").start({})
    viewer, upsert = api.calls
    assert viewer["kind"] == "Viewer"
    assert "viewer" in viewer["body"]["query"]
    assert "entity" in viewer["body"]["query"]
    expected = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    for call in api.calls:
        assert call["headers"]["Authorization"] == expected
        assert call["headers"]["Content-Type"] == "application/json"
    assert upsert["kind"] == "UpsertBucket"
    variables = upsert["body"]["variables"]
    assert variables == {"name": "abc12345", "project": "p", "entity": "e", "displayName": "my run"}
    # Every variable we send is one the SDK declares, mapped to the same input field.
    recorded = next(
        r for r in _recorded("wandb_transcript.jsonl") if r["note"] == "gql:UpsertBucket"
    )
    assert set(variables) <= set(recorded["body"]["variables"])
    query = upsert["body"]["query"]
    for mapping in ("modelName: $project", "entityName: $entity", "config: $config"):
        assert mapping in query.replace(":$", ": $")
    assert "historyLineCount" in query
    assert state["entity"] == "e"
    assert state["run_id"] == "abc12345"
    assert state["history_lines"] == 0
    assert state["last_step"] == -1


def test_default_entity_comes_from_viewer_and_goes_into_the_path(api, http):
    transport = make(http, entity=None)
    state = transport.start({})
    assert api.of("UpsertBucket")[0]["body"]["variables"]["entity"] == "default-team"
    assert state["entity"] == "default-team"
    transport.heartbeat()
    assert api.of("file_stream")[0]["url"] == f"{BASE}/files/default-team/p/abc12345/file_stream"


def test_hparams_send_the_merged_config_wrapped_in_value(api, http):
    transport = make(http)
    transport.start({})
    transport.send(
        [SpooledRow(seq=0, kind="hparams", payload={"config": {"lr": 1e-4}}, time=CREATED)]
    )
    transport.send(
        [
            SpooledRow(
                seq=1,
                kind="hparams",
                payload={"config": {"opt": {"name": "adamw"}, "bad": math.nan, "big": math.inf}},
                time=CREATED,
            )
        ]
    )
    configs = [call["body"]["variables"]["config"] for call in api.of("UpsertBucket")[1:]]
    assert all(isinstance(config, str) for config in configs)  # a JSONString, not an object
    assert json.loads(configs[0]) == {"lr": {"value": 0.0001}}
    last = json.loads(configs[1])
    assert last["lr"] == {"value": 0.0001}
    assert last["opt"] == {"value": {"name": "adamw"}}
    # As the SDK encodes config (recorded): NaN → null, infinity a bare token.
    assert last["bad"] == {"value": None}
    assert '"big":{"value":Infinity}' in configs[1]


def test_graphql_errors_in_a_200_are_permanent_errors(api, http):
    api.graphql_errors = [{"message": "project name is invalid"}]
    with pytest.raises(PermanentHttpError, match="project name is invalid"):
        make(http).start({})


def test_a_null_viewer_or_401_means_a_bad_key(api, http):
    api.viewer = None
    with pytest.raises(PermanentHttpError, match="WANDB_API_KEY") as info:
        make(http).start({})
    assert info.value.status == 401


@responses.activate
def test_http_401_names_the_key_variable_and_never_the_key(http):
    responses.add(responses.POST, GRAPHQL, status=401, json={"errors": [{"message": KEY}]})
    with pytest.raises(PermanentHttpError, match="WANDB_API_KEY") as info:
        make(http).start({})
    assert KEY not in str(info.value)
    assert KEY not in (info.value.body or "")
    assert info.value.status == 401


@responses.activate
def test_upsert_conflict_409_is_retryable(http):
    responses.add(
        responses.POST,
        GRAPHQL,
        json={"data": {"viewer": {"entity": "e"}}},
        match=[
            responses.matchers.json_params_matcher({"operationName": "Viewer"}, strict_match=False)
        ],
    )
    responses.add(responses.POST, GRAPHQL, status=409, json={"error": "conflict"})
    with pytest.raises(RetryableHttpError) as info:
        make(http).start({})
    assert info.value.status == 409


# --- file_stream ---------------------------------------------------------------------------


def test_history_lines_carry_step_runtime_timestamp_at_contiguous_offsets(api, http):
    transport = make(http)
    transport.start({})
    state = transport.send(
        [
            metrics(0, {"loss": 0.5}, step=5, at=2.0),
            metrics(1, {"loss": 0.4}, at=3.5),
            metrics(2, {"loss": 0.3, "phase": "warmup", "done": False}, at=4.0),
        ]
    )
    transport.send([metrics(3, {"loss": 0.2}, at=6.0)])
    first, second = api.of("file_stream")
    offset, lines = lines_of(first, "wandb-history.jsonl")
    assert offset == 0
    assert [line["_step"] for line in lines] == [5, 6, 7]  # None → previous + 1
    assert [line["_runtime"] for line in lines] == [2.0, 3.5, 4.0]  # since the run started
    assert [line["_timestamp"] for line in lines] == [CREATED + 2.0, CREATED + 3.5, CREATED + 4.0]
    assert lines[2] == {
        "loss": 0.3,
        "phase": "warmup",
        "done": False,
        "_step": 7,
        "_runtime": 4.0,
        "_timestamp": CREATED + 4.0,
    }
    offset, lines = lines_of(second, "wandb-history.jsonl")
    assert (offset, lines[0]["_step"]) == (3, 8)
    assert state["history_lines"] == 3


def test_summary_is_one_full_replacement_line_at_offset_0(api, http):
    transport = make(http)
    transport.start({})
    transport.send([metrics(0, {"loss": 0.5, "acc": 0.1}, step=0, at=1.0)])
    transport.send([metrics(1, {"loss": 0.4}, step=1, at=37.7)])
    calls = api.of("file_stream")
    offset, summary = lines_of(calls[-1], "wandb-summary.json")
    assert offset == 0
    assert len(summary) == 1
    assert summary[0] == {
        "loss": 0.4,
        "acc": 0.1,  # the latest value of every metric, not only this row's
        "_step": 1,
        "_runtime": 37.7,
        "_timestamp": CREATED + 37.7,
        "_wandb": {"runtime": 37},
    }
    recorded = [
        r
        for r in _recorded("wandb_transcript.jsonl")
        if r["note"] == "file_stream" and "wandb-summary.json" in r["body"].get("files", {})
    ]
    assert recorded[0]["body"]["files"]["wandb-summary.json"]["offset"] == 0
    assert set(json.loads(recorded[0]["body"]["files"]["wandb-summary.json"]["content"][0])) >= {
        "_step",
        "_runtime",
        "_timestamp",
        "_wandb",
    }


def test_long_text_is_merged_into_the_summary_without_clobbering_metrics(api, http):
    transport = make(http)
    transport.start({})
    transport.send(
        [
            metrics(0, {"loss": 0.5}, step=0),
            SpooledRow(seq=1, kind="text", payload={"key": "sample", "text": "a\nb"}, time=CREATED),
        ]
    )
    transport.send([metrics(2, {"loss": 0.4}, step=1)])
    first, second = api.of("file_stream")
    _, summary = lines_of(first, "wandb-summary.json")
    assert summary[0]["loss"] == 0.5
    assert summary[0]["sample"] == "a\nb"
    _, summary = lines_of(second, "wandb-summary.json")
    assert summary[0]["loss"] == 0.4
    assert summary[0]["sample"] == "a\nb"


def test_heartbeat_is_an_empty_object_and_finish_says_complete_and_exitcode(api, http):
    transport = make(http)
    transport.start({})
    transport.heartbeat()
    transport.finish(1)
    heartbeat, finish = api.of("file_stream")
    assert heartbeat["body"] == {}
    assert finish["body"] == {"complete": True, "exitcode": 1}
    recorded = _recorded("wandb_transcript_scenario2_default_entity_heartbeat_faults.jsonl")
    assert {} in [r["body"] for r in recorded if r["note"] == "file_stream"]
    final = [r for r in _recorded("wandb_transcript.jsonl") if r["note"] == "file_stream"][-1]
    assert final["body"]["complete"] is True
    assert final["body"]["exitcode"] == 0


def test_nan_and_infinity_are_sent_like_the_sdk_sends_them(api, http):
    transport = make(http)
    transport.start({})
    transport.send([metrics(0, {"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, step=0)])
    raw = api.of("file_stream")[0]["body"]["files"]["wandb-history.jsonl"]["content"][0]
    # Recorded from wandb 0.31.0: {"ok":1,...,"nan":NaN,"inf":Infinity,"ninf":-Infinity}
    assert '"nan":NaN' in raw
    assert '"inf":Infinity' in raw
    assert '"ninf":-Infinity' in raw
    summary = api.of("file_stream")[0]["body"]["files"]["wandb-summary.json"]["content"][0]
    assert '"nan":NaN' in summary


def test_a_failed_send_changes_nothing_so_the_retry_uses_the_same_offsets(api, http):
    transport = make(http)
    transport.start({})
    api.file_stream_status = 503
    with pytest.raises(RetryableHttpError):
        transport.send([metrics(0, {"loss": 1.0}), metrics(1, {"loss": 0.9})])
    api.file_stream_status = 200
    transport.send([metrics(0, {"loss": 1.0}), metrics(1, {"loss": 0.9})])
    failed, retried = api.of("file_stream")
    assert failed["body"] == retried["body"]


def test_big_batches_are_split_under_the_body_cap(api, http, monkeypatch):
    monkeypatch.setattr(wandb_transport, "_MAX_BODY_BYTES", 200)
    transport = make(http)
    transport.start({})
    transport.send(
        [metrics(seq, {"loss": seq / 10, "pad": "x" * 40}, step=seq) for seq in range(8)]
    )
    offsets = []
    steps = []
    for call in api.of("file_stream"):
        offset, lines = lines_of(call, "wandb-history.jsonl")
        offsets.append(offset)
        steps += [line["_step"] for line in lines]
        assert len(json.dumps(call["body"])) < 1000
    assert len(offsets) > 1
    assert steps == list(range(8))
    assert offsets[0] == 0
    assert offsets == sorted(offsets)


# --- resume ----------------------------------------------------------------------------------


def test_resuming_an_existing_run_continues_at_history_line_count(api, http):
    api.bucket = {
        "historyLineCount": 3,
        "summaryMetrics": json.dumps({"_step": 2, "loss": 0.33, "_runtime": 12.0}),
        "config": json.dumps({"lr": {"value": 0.1}, "_wandb": {"value": {"t": 1}}}),
    }
    transport = make(http, run_id="resumeme", created_at=CREATED)
    state = transport.start({})
    assert (state["history_base"], state["history_lines"], state["last_step"]) == (3, 3, 2)
    transport.send([metrics(0, {"loss": 0.2}, at=1.0)])
    offset, lines = lines_of(api.of("file_stream")[0], "wandb-history.jsonl")
    recorded = [
        r
        for r in _recorded("wandb_transcript_scenario3_resume.jsonl")
        if r["note"] == "file_stream"
    ][-1]
    assert recorded["body"]["files"]["wandb-history.jsonl"]["offset"] == 3  # what the SDK did
    assert offset == 3
    assert lines[0]["_step"] == 3
    assert lines[0]["_runtime"] == pytest.approx(13.0)  # continues from the old 12 s
    _, summary = lines_of(api.of("file_stream")[0], "wandb-summary.json")
    assert summary[0]["loss"] == 0.2
    transport.send([SpooledRow(seq=1, kind="hparams", payload={"config": {"bs": 8}}, time=0.0)])
    config = json.loads(api.of("UpsertBucket")[-1]["body"]["variables"]["config"])
    assert config == {"lr": {"value": 0.1}, "bs": {"value": 8}}  # the old keys are kept


def test_restarting_from_local_state_keeps_our_offsets(api, http):
    transport = make(http)
    first = transport.start({})
    first = transport.send([metrics(0, {"loss": 1.0}, step=0), metrics(1, {"loss": 0.5}, step=1)])
    api.bucket = {"historyLineCount": 7}  # whatever the server says, our acked count wins
    again = make(http)
    state = again.start(first)
    assert api.of("UpsertBucket")[-1]["body"]["variables"]["id"] == "UnVuOnYxOmZha2U="
    again.send([metrics(2, {"loss": 0.1})])
    offset, lines = lines_of(api.of("file_stream")[-1], "wandb-history.jsonl")
    assert (offset, lines[0]["_step"]) == (2, 2)
    assert state["start_time"] == CREATED


# --- URLs and ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "app"),
    [
        ("https://api.wandb.ai", "https://forge.coreweave.com/wandb"),
        ("https://api.forge.coreweave.com", "https://forge.coreweave.com/wandb"),
        ("https://api.wandb.test", "https://app.wandb.test"),
        ("https://api.wandb.eu", "https://wandb.eu"),
        ("https://api.mycorp.com", "https://app.mycorp.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://wandb.mycorp.com/", "https://wandb.mycorp.com"),
    ],
)
def test_app_url_is_derived_like_wandb_0_31(base, app):
    assert api_to_app_url(base) == app


@responses.activate
def test_a_forge_base_url_talks_to_the_api_behind_it(http):
    responses.add(responses.POST, "https://api.wandb.ai/graphql", json={"data": {"viewer": None}})
    with pytest.raises(PermanentHttpError):
        make(http, base_url="https://api.forge.coreweave.com").start({})
    assert responses.calls[0].request.url == "https://api.wandb.ai/graphql"


def test_generated_run_ids_look_like_the_sdk_s():
    ids = {generate_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 8 and i.isalnum() and i == i.lower() for i in ids)


def test_repr_never_shows_the_key(http):
    transport = make(http)
    assert KEY not in repr(transport)
    assert base64.b64encode(f"api:{KEY}".encode()).decode() not in repr(transport)
