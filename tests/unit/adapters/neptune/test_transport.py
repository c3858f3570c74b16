"""Unit tests for the Neptune 1.x transport: every request shape, checked with ``responses``.

The expected shapes come from the recorded neptune-client 1.14 transcript
(``wire/neptune_transcript.jsonl``): which calls carry the API token, which a Bearer
token, the query parameters, and the bodies.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import attrs
import pytest
import responses

from crucible_train.adapters.neptune._auth import OAuthSession, parse_api_token
from crucible_train.adapters.neptune._transport import (
    PROTOCOL_CLIENT_VERSION,
    NeptuneTransport,
)
from crucible_train.adapters.requests_http import RequestsHttpClient
from crucible_train.errors import PermanentHttpError, RetryableHttpError
from servers.fake_neptune import make_api_token, make_jwt

API = "https://neptune.example"
ISS = "https://sso.example/auth/realms/custom"
AZP = "custom-client"
TOKEN = make_api_token(API, api_key="sk-unit-test-secret-key")
PROJECT = {
    "id": "proj-uuid",
    "name": "proj",
    "organizationName": "ws",
    "organizationId": "org-uuid",
    "projectKey": "PROJ",
    "version": 2,
}
RUN = {
    "id": "run-uuid",
    "organizationName": "ws",
    "projectName": "proj",
    "projectId": "proj-uuid",
    "parentId": "proj-uuid",
    "shortId": "PROJ-7",
    "trashed": False,
    "type": "run",
    "customId": "cid-1",
}
CONFIG = f"{API}/api/backend/v1/clients/config"
EXCHANGE = f"{API}/api/backend/v1/authorization/oauth-token"
REFRESH = f"{ISS}/protocol/openid-connect/token"
PROJECT_GET = f"{API}/api/backend/v1/projects/get"
CREATE = f"{API}/api/leaderboard/v1/experiments"
OPERATIONS = f"{API}/api/leaderboard/v1/attributes/operations"
PING = f"{API}/api/leaderboard/v1/attributes/ping"


@attrs.frozen
class Row:
    seq: int
    kind: str
    payload: dict
    time: float = 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def access_token(exp: float, tag: str = "a") -> str:
    return make_jwt({"iss": ISS, "azp": AZP, "exp": int(exp), "tag": tag})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def http() -> Iterator[RequestsHttpClient]:
    client = RequestsHttpClient(default_timeout=5.0)
    yield client
    client.close()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def transport_for(http, clock, custom_id="cid-1", token=TOKEN) -> NeptuneTransport:
    return NeptuneTransport(
        http=http,
        credentials=parse_api_token(token),
        project="ws/proj",
        custom_id=custom_id,
        timeout=5.0,
        clock=clock,
    )


def serve_start(mock, clock, *, ttl=3600.0, config=None):
    access = access_token(clock.now + ttl, "first")
    mock.get(CONFIG, json=config or {"apiUrl": API, "applicationUrl": "https://app.example"})
    mock.get(EXCHANGE, json={"accessToken": access, "refreshToken": "r-1", "username": "u"})
    mock.get(PROJECT_GET, json=PROJECT)
    mock.post(CREATE, json=RUN)
    return access


def calls_to(mock, url):
    return [call for call in mock.calls if call.request.url.split("?")[0] == url]


# --- start ---------------------------------------------------------------------------------


def test_start_sends_the_recorded_request_sequence(mock, http, clock):
    access = serve_start(mock, clock)
    state = transport_for(http, clock).start({})

    urls = [call.request.url for call in mock.calls]
    assert urls == [
        f"{CONFIG}?alpha=true",
        EXCHANGE,
        f"{PROJECT_GET}?projectIdentifier=ws%2Fproj",
        CREATE,
    ]
    config, exchange, project, create = (call.request for call in mock.calls)
    for request in (config, exchange):
        assert request.headers["X-Neptune-Api-Token"] == TOKEN
        assert "Authorization" not in request.headers
    assert config.headers["X-Neptune-LegacyClient"] == "false"
    for request in (project, create):
        assert request.headers["Authorization"] == f"Bearer {access}"
        assert "X-Neptune-Api-Token" not in request.headers
        assert request.headers["X-Neptune-LegacyClient"] == "false"
    assert create.headers["X-Neptune-CliVersion"] == PROTOCOL_CLIENT_VERSION
    assert create.headers["Content-Type"] == "application/json"
    assert json.loads(create.body) == {
        "projectIdentifier": "proj-uuid",
        "parentId": "proj-uuid",
        "type": "run",
        "cliVersion": PROTOCOL_CLIENT_VERSION,
        "customId": "cid-1",
    }
    assert state == {
        "custom_id": "cid-1",
        "project": "ws/proj",
        "base_url": API,
        "api_url": API,
        "application_url": "https://app.example",
        "project_id": "proj-uuid",
        "run_id": "run-uuid",
        "short_id": "PROJ-7",
        "workspace": "ws",
        "project_name": "proj",
    }
    assert not any(TOKEN in str(value) or access in str(value) for value in state.values())


def test_url_follows_the_application_url(mock, http, clock):
    serve_start(mock, clock)
    transport = transport_for(http, clock)
    assert transport.url is None
    transport.start({})
    assert transport.url == "https://app.example/ws/proj/e/PROJ-7"


def test_api_url_from_the_config_is_used_for_later_calls(mock, http, clock):
    other = "https://api2.example"
    access = access_token(clock.now + 3600)
    mock.get(CONFIG, json={"apiUrl": other, "applicationUrl": other})
    mock.get(
        f"{other}/api/backend/v1/authorization/oauth-token",
        json={"accessToken": access, "refreshToken": "r"},
    )
    mock.get(f"{other}/api/backend/v1/projects/get", json=PROJECT)
    mock.post(f"{other}/api/leaderboard/v1/experiments", json=RUN)
    state = transport_for(http, clock).start({})
    assert state["api_url"] == other
    assert state["base_url"] == API


def test_restart_reuses_the_persisted_custom_id(mock, http, clock):
    serve_start(mock, clock)
    transport = transport_for(http, clock, custom_id="fresh-id")
    state = transport.start({"custom_id": "cid-1", "run_id": "run-uuid"})
    assert json.loads(calls_to(mock, CREATE)[0].request.body)["customId"] == "cid-1"
    assert state["custom_id"] == "cid-1"


def test_unreachable_server_raises_a_retryable_error(http, clock):
    # Port 9 (discard) on loopback is closed: the connection is refused at once.
    token = make_api_token("http://127.0.0.1:9")
    with pytest.raises(RetryableHttpError):
        transport_for(http, clock, token=token).start({})


def test_rejected_api_token_gives_a_clear_error(mock, http, clock):
    mock.get(CONFIG, json={"apiUrl": API, "applicationUrl": API})
    mock.get(EXCHANGE, status=401, json={"title": "Unauthorized"})
    with pytest.raises(PermanentHttpError, match="rejected the API token") as info:
        transport_for(http, clock).start({})
    assert info.value.status == 401
    assert "NEPTUNE_API_TOKEN" in str(info.value)
    assert TOKEN not in str(info.value)


def test_missing_project_is_named(mock, http, clock):
    serve_start(mock, clock)
    mock.replace(responses.GET, PROJECT_GET, status=404, json={"title": "not found"})
    with pytest.raises(PermanentHttpError, match=r"'ws/proj' was not found") as info:
        transport_for(http, clock).start({})
    assert info.value.status == 404
    assert not calls_to(mock, CREATE)


def test_legacy_project_is_refused(mock, http, clock):
    serve_start(mock, clock)
    mock.replace(responses.GET, PROJECT_GET, json={**PROJECT, "version": 1})
    with pytest.raises(PermanentHttpError, match="legacy project"):
        transport_for(http, clock).start({})
    assert not calls_to(mock, CREATE)


def test_incompatible_server_version_is_warned_about(mock, http, clock, caplog):
    config = {
        "apiUrl": API,
        "applicationUrl": API,
        "pyLibVersions": {"minCompatibleVersion": "2.0.0", "maxCompatibleVersion": "2.9.0"},
    }
    serve_start(mock, clock, config=config)
    with caplog.at_level(logging.WARNING):
        transport_for(http, clock).start({})
    assert "supports neptune-client 2.0.0 to 2.9.0" in caplog.text


# --- tokens -------------------------------------------------------------------------------


def test_short_lived_token_is_refreshed_at_the_jwt_issuer(mock, http, clock):
    serve_start(mock, clock, ttl=20.0)  # less than the 30 s margin
    refreshed = access_token(clock.now + 3600, "refreshed")
    mock.post(
        REFRESH,
        json={"access_token": refreshed, "refresh_token": "r-2", "expires_in": 3600},
    )
    transport_for(http, clock).start({})

    (refresh,) = calls_to(mock, REFRESH)
    assert refresh.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert refresh.request.headers["Accept"] == "application/json"
    assert "Authorization" not in refresh.request.headers
    assert "X-Neptune-Api-Token" not in refresh.request.headers
    assert parse_qs(refresh.request.body.decode()) == {
        "grant_type": ["refresh_token"],
        "client_id": [AZP],
        "refresh_token": ["r-1"],
    }
    for url in (PROJECT_GET, CREATE):
        assert calls_to(mock, url)[0].request.headers["Authorization"] == f"Bearer {refreshed}"


def test_refresh_happens_again_when_the_token_nears_expiry(mock, http, clock):
    serve_start(mock, clock, ttl=600.0)
    transport = transport_for(http, clock)
    transport.start({})
    assert not calls_to(mock, REFRESH)

    refreshed = access_token(clock.now + 1200, "later")
    mock.post(REFRESH, json={"access_token": refreshed, "expires_in": 600})
    mock.post(PING)
    clock.now += 580  # 20 s left
    transport.heartbeat()
    assert len(calls_to(mock, REFRESH)) == 1
    assert calls_to(mock, PING)[0].request.headers["Authorization"] == f"Bearer {refreshed}"
    # No refresh_token in the answer: the old one is kept for the next refresh.
    clock.now += 1190
    mock.replace(responses.POST, REFRESH, json={"access_token": access_token(clock.now + 900)})
    transport.heartbeat()
    assert parse_qs(calls_to(mock, REFRESH)[-1].request.body.decode())["refresh_token"] == ["r-1"]


def test_a_401_is_retried_once_after_a_refresh(mock, http, clock):
    serve_start(mock, clock)
    transport = transport_for(http, clock)
    transport.start({})
    refreshed = access_token(clock.now + 3600, "after-401")
    mock.post(REFRESH, json={"access_token": refreshed, "refresh_token": "r-2"})
    mock.post(PING, status=401)
    mock.post(PING, status=200)
    transport.heartbeat()
    pings = calls_to(mock, PING)
    assert len(pings) == 2
    assert pings[1].request.headers["Authorization"] == f"Bearer {refreshed}"
    assert len(calls_to(mock, REFRESH)) == 1


def test_a_second_401_is_raised(mock, http, clock):
    serve_start(mock, clock)
    transport = transport_for(http, clock)
    transport.start({})
    mock.post(REFRESH, json={"access_token": access_token(clock.now + 3600, "x")})
    mock.post(PING, status=401)
    with pytest.raises(PermanentHttpError) as info:
        transport.heartbeat()
    assert info.value.status == 401
    assert len(calls_to(mock, PING)) == 2


def test_a_refused_refresh_token_falls_back_to_a_new_exchange(mock, http, clock):
    serve_start(mock, clock, ttl=10.0)
    mock.post(REFRESH, status=400, json={"error": "invalid_grant"})
    new = access_token(clock.now + 3600, "new")
    mock.get(EXCHANGE, json={"accessToken": new, "refreshToken": "r-9"})  # the second answer
    transport_for(http, clock).start({})
    assert calls_to(mock, CREATE)[0].request.headers["Authorization"] == f"Bearer {new}"
    assert len(calls_to(mock, EXCHANGE)) == 2
    assert len(calls_to(mock, REFRESH)) == 1


def test_an_access_token_that_is_not_a_jwt_is_an_error(mock, http, clock):
    mock.get(CONFIG, json={"apiUrl": API, "applicationUrl": API})
    mock.get(EXCHANGE, json={"accessToken": "opaque-token", "refreshToken": "r"})
    with pytest.raises(PermanentHttpError, match="not a JWT") as info:
        transport_for(http, clock).start({})
    assert "opaque-token" not in str(info.value)


def test_session_repr_hides_tokens(mock, http, clock):
    access = serve_start(mock, clock)
    session = OAuthSession(http=http, credentials=parse_api_token(TOKEN), timeout=5, clock=clock)
    session.exchange(API)
    assert session.has_tokens
    for text in (repr(session), repr(transport_for(http, clock))):
        assert access not in text
        assert TOKEN not in text
        assert "r-1" not in text


# --- operations and ping ---------------------------------------------------------------------


@pytest.fixture
def started(mock, http, clock) -> NeptuneTransport:
    serve_start(mock, clock)
    transport = transport_for(http, clock)
    transport.start({})
    return transport


def point(path, step, value=0.5):
    return {
        "path": path,
        "logFloats": {
            "entries": [{"value": value, "step": float(step), "timestampMilliseconds": 1000}]
        },
    }


def test_operations_are_posted_merged_to_the_run(mock, started):
    mock.post(OPERATIONS, json=[])
    rows = [
        Row(0, "init", {"ops": [{"path": "sys/failed", "assignBool": {"value": False}}]}),
        Row(1, "metrics", {"ops": [point("train/loss", 0), point("acc", 0)]}),
        Row(2, "metrics", {"ops": [point("train/loss", 1), point("acc", 1)]}),
        Row(3, "text", {"ops": [{"path": "note", "assignString": {"value": "x"}}]}),
    ]
    started.send(rows)
    (call,) = calls_to(mock, OPERATIONS)
    assert call.request.url == f"{OPERATIONS}?experimentId=run-uuid"
    assert call.request.headers["Authorization"].startswith("Bearer ")
    assert call.request.headers["Content-Type"] == "application/json"
    body = json.loads(call.request.body)
    assert body == [
        {"path": "sys/failed", "assignBool": {"value": False}},
        {
            "path": "train/loss",
            "logFloats": {
                "entries": [
                    {"value": 0.5, "step": 0.0, "timestampMilliseconds": 1000},
                    {"value": 0.5, "step": 1.0, "timestampMilliseconds": 1000},
                ]
            },
        },
        {
            "path": "acc",
            "logFloats": {
                "entries": [
                    {"value": 0.5, "step": 0.0, "timestampMilliseconds": 1000},
                    {"value": 0.5, "step": 1.0, "timestampMilliseconds": 1000},
                ]
            },
        },
        {"path": "note", "assignString": {"value": "x"}},
    ]


def test_large_batches_are_split_at_1000_operations(mock, started):
    mock.post(OPERATIONS, json=[])
    ops = [{"path": f"p{i}", "assignInt": {"value": i}} for i in range(2500)]
    started.send([Row(0, "hparams", {"ops": ops})])
    sizes = [len(json.loads(call.request.body)) for call in calls_to(mock, OPERATIONS)]
    assert sizes == [1000, 1000, 500]


def test_per_operation_errors_are_reported_once(mock, started, caplog):
    error = {"errorType": "metadata_inconsistency", "errorDescription": "acc: wrong type"}
    mock.post(OPERATIONS, json=[error, error])
    with caplog.at_level(logging.INFO, logger="crucible_train.adapters.neptune"):
        started.send([Row(0, "metrics", {"ops": [point("acc", 0)]})])
        started.send([Row(1, "metrics", {"ops": [point("acc", 1)]})])
    warnings = [r for r in caplog.records if "acc: wrong type" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_duplicate_points_after_a_restart_are_logged_as_harmless(mock, http, clock, caplog):
    serve_start(mock, clock)
    transport = transport_for(http, clock)
    transport.start({"custom_id": "cid-1", "run_id": "run-uuid"})  # a restarted process
    error = {"errorType": "logSeriesValueError", "errorDescription": "loss: step 0 exists"}
    mock.post(OPERATIONS, json=[error])
    with caplog.at_level(logging.INFO, logger="crucible_train.adapters.neptune"):
        transport.send([Row(5, "metrics", {"ops": [point("loss", 0)]})])
    (record,) = [r for r in caplog.records if "step 0 exists" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "expected after a restart" in record.getMessage()


def test_missing_run_is_a_permanent_error(mock, started):
    mock.post(OPERATIONS, status=404, json={"title": "run not found"})
    with pytest.raises(PermanentHttpError):
        started.send([Row(0, "metrics", {"ops": [point("acc", 0)]})])


def test_ping_posts_an_empty_body(mock, started):
    mock.post(PING)
    started.heartbeat()
    (call,) = calls_to(mock, PING)
    assert call.request.url == f"{PING}?experimentId=run-uuid"
    assert not call.request.body
    assert call.request.headers["Authorization"].startswith("Bearer ")


def test_finish_marks_only_failure(mock, started):
    before = len(mock.calls)
    started.finish(0)  # the 1.x API has no close call
    assert len(mock.calls) == before
    mock.post(OPERATIONS, json=[])
    started.finish(1)
    (call,) = calls_to(mock, OPERATIONS)
    assert json.loads(call.request.body) == [{"path": "sys/failed", "assignBool": {"value": True}}]


def test_send_before_start_is_an_error(http, clock):
    with pytest.raises(PermanentHttpError, match="before start"):
        transport_for(http, clock).send([Row(0, "metrics", {"ops": [point("a", 0)]})])


def test_time_module_is_the_default_clock(mock, http):
    access = access_token(time.time() + 3600)
    mock.get(CONFIG, json={"apiUrl": API, "applicationUrl": API})
    mock.get(EXCHANGE, json={"accessToken": access, "refreshToken": "r"})
    mock.get(PROJECT_GET, json=PROJECT)
    mock.post(CREATE, json=RUN)
    NeptuneTransport(
        http=http, credentials=parse_api_token(TOKEN), project="ws/proj", custom_id="c"
    ).start({})
    assert not calls_to(mock, REFRESH)
