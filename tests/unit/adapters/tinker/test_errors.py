"""Error mapping of the Tinker adapters: SDK exceptions become typed errors that carry the
server's message (and status) and never the API key; waits are bounded."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import numpy as np
import pytest

tinker = pytest.importorskip("tinker")

from crucible_train.adapters.tinker._sdk import _takes_http_kwargs, translate  # noqa: E402
from crucible_train.adapters.tinker.model_info import TinkerModelInfo  # noqa: E402
from crucible_train.adapters.tinker.sampling_client import TinkerSamplingClient  # noqa: E402
from crucible_train.adapters.tinker.training_client import TinkerTrainingClient  # noqa: E402
from crucible_train.errors import (  # noqa: E402
    BackendAuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendRequestError,
    BackendTimeoutError,
    ModelInfoError,
    SamplingClientError,
    TrainingClientError,
)
from crucible_train.types import Datum, ModelInput, SamplingParams  # noqa: E402
from servers.fake_tinker import FakeTinker, serve  # noqa: E402

TIMEOUT = 30
KEY = "tml-do-not-leak-0123456789"
PASSES_HTTP_KWARGS = _takes_http_kwargs(tinker)
"""0.16.x takes max_retries; 0.38 retries an unreachable server for minutes."""

DATUM = Datum(
    model_input=ModelInput.from_ints([1, 2]),
    loss_fn_inputs={"target_tokens": np.array([2, 3]), "weights": np.ones(2, dtype=np.float32)},
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from serve(monkeypatch)


@pytest.fixture
def closing() -> Any:
    made: list[Any] = []
    yield made.append
    for client in made:
        client.close()


def _no_key(error: BaseException) -> None:
    text = f"{error!s} {error!r} {error.__cause__!s}"
    assert KEY not in text
    assert KEY not in pickle.dumps(error).decode("latin-1")


def test_an_unreachable_server_is_a_connection_error_or_a_bounded_timeout(fake, closing):
    fake.refuse_connections = True
    client = TinkerTrainingClient(**fake.settings(api_key=KEY, max_retries=0, future_timeout_s=2))
    closing(client)
    error = client.forward([DATUM], "cross_entropy").exception(TIMEOUT)
    if PASSES_HTTP_KWARGS:
        # 0.16.x fails the session request at once (max_retries=0 reaches its HTTP client).
        assert isinstance(error, BackendConnectionError)
        assert isinstance(error, ConnectionError)
        assert "Connection" in str(error)
    else:
        # 0.38 retries unreachable servers for up to 5 minutes: our wait ends first.
        assert isinstance(error, BackendTimeoutError)
        assert "future_timeout_s=2" in str(error)
    assert isinstance(error, TrainingClientError)
    assert isinstance(error, SamplingClientError)
    _no_key(error)
    # The server comes back: the next call connects (0.38 had kept retrying meanwhile),
    # so no SDK retry loop outlives the test.
    fake.refuse_connections = False
    for _ in range(20):
        if client.forward([DATUM], "cross_entropy").exception(TIMEOUT) is None:
            break
    else:
        pytest.fail("the client did not reconnect once the server answered")


def test_a_rejected_key_is_an_authentication_error_with_the_servers_words(closing):
    server = FakeTinker(api_key="tml-the-right-key")
    server.register()  # left registered: see FakeTinker.register
    client = TinkerTrainingClient(**server.settings(api_key=KEY))
    closing(client)
    error = client.forward([DATUM], "cross_entropy").exception(TIMEOUT)
    assert isinstance(error, BackendAuthenticationError)
    assert error.status == 401
    assert "Invalid API key" in str(error)
    _no_key(error)
    sampler = TinkerSamplingClient(**server.settings(api_key=KEY))
    closing(sampler)
    sampled = sampler.sample(ModelInput.from_ints([1]), 1, SamplingParams()).exception(TIMEOUT)
    assert isinstance(sampled, BackendAuthenticationError)
    _no_key(sampled)


def test_a_malformed_key_is_refused_before_any_request(fake, closing):
    client = TinkerTrainingClient(**fake.settings(api_key="sk-not-a-tinker-key-42"))
    closing(client)
    error = client.forward([DATUM], "cross_entropy").exception(TIMEOUT)
    assert isinstance(error, BackendAuthenticationError)
    assert "tml-" in str(error)
    assert "sk-not-a-tinker-key-42" not in str(error)
    assert fake.requests == []


def test_a_result_that_never_arrives_times_out_and_later_calls_still_work(fake, closing):
    client = TinkerTrainingClient(**fake.settings(api_key=KEY, future_timeout_s=0.5))
    closing(client)
    client.forward([DATUM], "cross_entropy").result(TIMEOUT)  # connected
    fake.hang.add("forward")
    error = client.forward([DATUM], "cross_entropy").exception(TIMEOUT)
    assert isinstance(error, BackendTimeoutError)
    assert isinstance(error, TimeoutError)
    assert "future_timeout_s=0.5" in str(error)
    _no_key(error)
    fake.release()
    assert client.forward([DATUM], "cross_entropy").result(TIMEOUT).loss_fn_outputs


def test_sampling_times_out_too(fake, closing):
    sampler = TinkerSamplingClient(**fake.settings(future_timeout_s=0.5))
    closing(sampler)
    fake.hang.add("asample")
    error = sampler.sample(ModelInput.from_ints([1]), 1, SamplingParams()).exception(TIMEOUT)
    assert isinstance(error, BackendTimeoutError)
    assert isinstance(error, SamplingClientError)


def test_model_info_failures_are_model_info_errors_caused_by_the_typed_error():
    server = FakeTinker(api_key="tml-the-right-key")
    server.register()  # left registered: see FakeTinker.register
    info = TinkerModelInfo(**server.settings(api_key=KEY))
    with pytest.raises(ModelInfoError) as caught:
        info.get_config()
    assert isinstance(caught.value.__cause__, BackendAuthenticationError)
    _no_key(caught.value)


def _response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://t.invalid/x"))


@pytest.mark.parametrize(
    ("make_exc", "expected", "status"),
    [
        (
            lambda: tinker.AuthenticationError(
                "401", response=_response(401, {"detail": "bad key"}), body={"detail": "bad key"}
            ),
            BackendAuthenticationError,
            401,
        ),
        (
            lambda: tinker.PermissionDeniedError(
                "403", response=_response(403, {"detail": "no"}), body={"detail": "no"}
            ),
            BackendAuthenticationError,
            403,
        ),
        (
            lambda: tinker.UnprocessableEntityError(
                "422", response=_response(422, {"detail": "loss"}), body={"detail": "loss"}
            ),
            BackendRequestError,
            422,
        ),
        (
            lambda: tinker.NotFoundError(
                "404", response=_response(404, {"detail": "gone"}), body={"detail": "gone"}
            ),
            BackendRequestError,
            404,
        ),
        (
            lambda: tinker.APIConnectionError(request=httpx.Request("POST", "http://t.invalid")),
            BackendConnectionError,
            None,
        ),
        (
            lambda: tinker.APITimeoutError(request=httpx.Request("POST", "http://t.invalid")),
            BackendTimeoutError,
            None,
        ),
    ],
)
def test_sdk_exceptions_map_to_typed_errors(make_exc, expected, status):
    error = translate(make_exc(), "forward", fallback=TrainingClientError, secret=KEY)
    assert type(error) is expected
    assert error.status == status  # type: ignore[attr-defined]
    assert str(error).startswith("forward")
    restored = pickle.loads(pickle.dumps(error))
    assert (type(restored), restored.status) == (expected, status)


def test_server_errors_and_unknown_failures_keep_the_ports_error_class():
    server_error = tinker.InternalServerError(
        "500", response=_response(500, {"detail": "engine died"}), body={"detail": "engine died"}
    )
    mapped = translate(server_error, "sample", fallback=SamplingClientError)
    assert type(mapped) is SamplingClientError
    assert "engine died" in str(mapped)
    assert "500" in str(mapped)
    other = translate(KeyError("x"), "optim_step", fallback=TrainingClientError)
    assert type(other) is TrainingClientError
    assert not isinstance(other, BackendError)


def test_the_key_is_scrubbed_even_when_an_sdk_message_contains_it():
    leaked = tinker.TinkerError(f"The api_key {KEY} is malformed")
    mapped = translate(leaked, "connect", fallback=TrainingClientError, secret=KEY)
    assert isinstance(mapped, BackendAuthenticationError)
    assert KEY not in str(mapped)
    assert mapped.__cause__ is None  # the original message would leak it
