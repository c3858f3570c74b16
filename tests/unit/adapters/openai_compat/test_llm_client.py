"""OpenAICompatLLMClient over RequestsHttpClient against the ``responses`` mock: request
bodies, auth, retries with back-off, permanent errors, malformed answers, timeouts."""

from __future__ import annotations

import json
import threading

import pytest
import requests
import responses

from crucible_train.adapters.openai_compat import llm_client
from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.errors import ConfigurationError, LLMClientError
from crucible_train.ports.llm import Completion, LLMClient, LLMParams

BASE = "https://llm.example.test/v1"
CHAT = f"{BASE}/chat/completions"
COMPLETIONS = f"{BASE}/completions"
KEY = "sk-Very_Secret_0451"

CHAT_ANSWER = {
    "id": "c1",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
}
TEXT_ANSWER = {
    "choices": [{"index": 0, "text": " there was a dragon", "finish_reason": "length"}],
    "usage": {"prompt_tokens": 4, "completion_tokens": 4},
}


@pytest.fixture
def http():
    client = RequestsHttpClient(pool_size=4, default_timeout=5.0)
    yield client
    client.close()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(llm_client, "_sleep", slept.append)
    return slept


def make(http: RequestsHttpClient, **kwargs: object) -> OpenAICompatLLMClient:
    settings: dict[str, object] = {"base_url": BASE, "model": "m-7b", "min_backoff_s": 0.01}
    settings.update(kwargs)
    return OpenAICompatLLMClient(http=http, **settings)  # type: ignore[arg-type]


def body(call: responses.Call) -> dict[str, object]:
    assert call.request.body is not None
    return json.loads(call.request.body)


# --- requests ----------------------------------------------------------------------------


def test_is_an_llm_client(http):
    client = make(http)
    assert isinstance(client, LLMClient)
    assert LLMClient in type(client).__mro__


def test_chat_posts_messages_and_model_and_returns_completion(http, mocked):
    mocked.post(CHAT, json=CHAT_ANSWER)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}]
    result = make(http).chat(messages)
    assert result == Completion(
        text="Paris", finish_reason="stop", prompt_tokens=12, completion_tokens=1
    )
    assert body(mocked.calls[0]) == {"model": "m-7b", "messages": messages}
    assert "Authorization" not in mocked.calls[0].request.headers


def test_chat_sends_every_set_param(http, mocked):
    mocked.post(CHAT, json=CHAT_ANSWER)
    params = LLMParams(max_tokens=8, temperature=0.0, top_p=0.9, stop=("\n", "END"), seed=3)
    make(http).chat([{"role": "user", "content": "x"}], params)
    sent = body(mocked.calls[0])
    assert sent["max_tokens"] == 8
    assert sent["temperature"] == 0.0
    assert sent["top_p"] == 0.9
    assert sent["stop"] == ["\n", "END"]
    assert sent["seed"] == 3


def test_unset_params_are_left_to_the_server(http, mocked):
    mocked.post(CHAT, json=CHAT_ANSWER)
    make(http).chat([{"role": "user", "content": "x"}], LLMParams(temperature=0.5))
    assert set(body(mocked.calls[0])) == {"model", "messages", "temperature"}


def test_complete_posts_prompt(http, mocked):
    mocked.post(COMPLETIONS, json=TEXT_ANSWER)
    result = make(http).complete("Once upon a time", LLMParams(max_tokens=4))
    assert result == Completion(
        text=" there was a dragon", finish_reason="length", prompt_tokens=4, completion_tokens=4
    )
    assert body(mocked.calls[0]) == {"model": "m-7b", "prompt": "Once upon a time", "max_tokens": 4}


def test_bearer_auth_when_a_key_is_set(http, mocked):
    mocked.post(CHAT, json=CHAT_ANSWER)
    make(http, api_key=KEY).chat([{"role": "user", "content": "x"}])
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"


def test_trailing_slash_of_base_url_is_ignored(http, mocked):
    mocked.post(CHAT, json=CHAT_ANSWER)
    make(http, base_url=BASE + "/").chat([{"role": "user", "content": "x"}])
    assert mocked.calls[0].request.url == CHAT


def test_missing_usage_and_null_content_are_tolerated(http, mocked):
    mocked.post(CHAT, json={"choices": [{"message": {"role": "assistant", "content": None}}]})
    assert make(http).chat([{"role": "user", "content": "x"}]) == Completion(text="")


def test_repr_masks_the_key(http):
    assert KEY not in repr(make(http, api_key=KEY))
    assert "***" in repr(make(http, api_key=KEY))


# --- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retryable_statuses_are_retried_then_succeed(http, mocked, sleeps, status):
    mocked.post(CHAT, status=status, json={"error": {"message": "busy"}})
    mocked.post(CHAT, status=status, json={"error": {"message": "busy"}})
    mocked.post(CHAT, json=CHAT_ANSWER)
    result = make(http).chat([{"role": "user", "content": "x"}])
    assert result.text == "Paris"
    assert len(mocked.calls) == 3
    assert len(sleeps) == 2


def test_backoff_grows_with_jitter_and_is_capped(http, mocked, sleeps):
    for _ in range(5):
        mocked.post(CHAT, status=503)
    mocked.post(CHAT, json=CHAT_ANSWER)
    make(http, max_retries=5, min_backoff_s=1.0, max_backoff_s=4.0).chat(
        [{"role": "user", "content": "x"}]
    )
    # Attempt n waits within [b/2, b] with b = min(4, 2**n).
    for attempt, delay in enumerate(sleeps):
        ceiling = min(4.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_is_honoured_up_to_max_backoff(http, mocked, sleeps):
    mocked.post(CHAT, status=429, headers={"Retry-After": "3"})
    mocked.post(CHAT, status=429, headers={"Retry-After": "999"})
    mocked.post(CHAT, json=CHAT_ANSWER)
    make(http, min_backoff_s=0.01, max_backoff_s=10.0).chat([{"role": "user", "content": "x"}])
    assert sleeps == [3.0, 10.0]


def test_gives_up_after_max_retries_with_the_server_message(http, mocked, sleeps):
    for _ in range(3):
        mocked.post(CHAT, status=503, json={"error": {"message": "model is loading"}})
    with pytest.raises(LLMClientError, match="gave up after 3 attempts") as info:
        make(http, max_retries=2).chat([{"role": "user", "content": "x"}])
    assert "model is loading" in str(info.value)
    assert len(mocked.calls) == 3
    assert len(sleeps) == 2


def test_zero_retries_tries_once(http, mocked, sleeps):
    mocked.post(CHAT, status=503)
    with pytest.raises(LLMClientError, match=r"gave up after 1 attempt\b"):
        make(http, max_retries=0).chat([{"role": "user", "content": "x"}])
    assert sleeps == []


def test_timeouts_are_retried_then_reported(http, mocked, sleeps):
    for _ in range(2):
        mocked.post(CHAT, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(LLMClientError, match=r"no answer within 1\.5 s"):
        make(http, max_retries=1, timeout_s=1.5).chat([{"role": "user", "content": "x"}])
    assert len(mocked.calls) == 2


def test_a_timeout_then_success(http, mocked, sleeps):
    mocked.post(CHAT, body=requests.exceptions.ConnectionError("reset"))
    mocked.post(CHAT, json=CHAT_ANSWER)
    assert make(http).chat([{"role": "user", "content": "x"}]).text == "Paris"


# --- permanent errors -----------------------------------------------------------------------


def test_bad_request_is_not_retried_and_quotes_the_server(http, mocked, sleeps):
    mocked.post(
        CHAT,
        status=400,
        json={"error": {"message": "max_tokens is too large: 99999", "type": "invalid_request"}},
    )
    with pytest.raises(LLMClientError, match="400 Bad Request: max_tokens is too large") as info:
        make(http).chat([{"role": "user", "content": "x"}], LLMParams(max_tokens=99999))
    assert len(mocked.calls) == 1
    assert sleeps == []
    assert "m-7b" in str(info.value)


def test_unauthorized_never_shows_the_key(http, mocked, sleeps):
    # A careless server echoes the Authorization header back.
    mocked.post(CHAT, status=401, json={"error": {"message": f"bad key Bearer {KEY}"}})
    with pytest.raises(LLMClientError, match="401") as info:
        make(http, api_key=KEY).chat([{"role": "user", "content": "x"}])
    assert KEY not in str(info.value)
    assert len(mocked.calls) == 1


def test_body_that_cannot_be_sent_is_a_typed_error(http, mocked):
    with pytest.raises(LLMClientError, match="cannot be sent"):
        make(http).chat([{"role": "user", "content": object()}])


# --- malformed answers ------------------------------------------------------------------------


def test_invalid_json_is_reported(http, mocked):
    mocked.post(CHAT, body="<html>gateway</html>", content_type="text/html")
    with pytest.raises(
        LLMClientError, match=r"server returned invalid JSON \(not an OpenAI-compatible answer\)"
    ) as info:
        make(http).chat([{"role": "user", "content": "x"}])
    assert "gateway" in str(info.value)


@pytest.mark.parametrize(
    "answer", [{}, {"choices": []}, {"choices": "no"}, [1, 2], {"choices": [None]}]
)
def test_missing_choices_is_reported(http, mocked, answer):
    mocked.post(CHAT, json=answer)
    with pytest.raises(
        LLMClientError, match=r"server returned no 'choices' \(not an OpenAI-compatible answer\)"
    ):
        make(http).chat([{"role": "user", "content": "x"}])


def test_completion_without_text_is_reported(http, mocked):
    mocked.post(COMPLETIONS, json={"choices": [{"index": 0}]})
    with pytest.raises(LLMClientError, match="not an OpenAI-compatible answer"):
        make(http).complete("x")


# --- construction and threads -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"model": " "}, "model must be a non-empty string"),
        ({"base_url": "ftp://x"}, "base_url is 'ftp://x'"),
        ({"timeout_s": 0}, "timeout_s is 0"),
        ({"max_retries": -1}, "max_retries is -1"),
        ({"min_backoff_s": float("nan")}, "min_backoff_s is nan"),
        ({"api_key": ""}, "api_key must be a non-empty string or None"),
    ],
)
def test_bad_arguments_are_configuration_errors(http, kwargs, problem):
    with pytest.raises(ConfigurationError, match=problem):
        make(http, **kwargs)


def test_concurrent_calls_from_a_pool(http, mocked):
    mocked.post(CHAT, json=CHAT_ANSWER)
    client = make(http)
    results: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        text = client.chat([{"role": "user", "content": "x"}]).text
        with lock:
            results.append(text)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["Paris"] * 8
