"""OpenAICompatLLMClient against the fake OpenAI-compatible server over real sockets."""

from __future__ import annotations

import time

import pytest

from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.errors import LLMClientError
from crucible_train.ports.llm import LLMParams
from servers.fake_openai import API_KEY, FakeOpenAI


@pytest.fixture
def server():
    with FakeOpenAI(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def http():
    client = RequestsHttpClient(pool_size=4, default_timeout=5.0)
    yield client
    client.close()


def make(server: FakeOpenAI, http: RequestsHttpClient, **kwargs: object) -> OpenAICompatLLMClient:
    settings: dict[str, object] = {
        "base_url": server.url,
        "model": "fake-model",
        "api_key": API_KEY,
        "min_backoff_s": 0.01,
        "max_backoff_s": 0.05,
    }
    settings.update(kwargs)
    return OpenAICompatLLMClient(http=http, **settings)  # type: ignore[arg-type]


def test_chat_and_complete_round_trip(server, http):
    client = make(server, http)
    chat = client.chat([{"role": "user", "content": "hello there"}])
    assert chat.text == "echo: hello there"
    assert chat.finish_reason == "stop"
    assert chat.completion_tokens == 3
    text = client.complete("a b c d", LLMParams(max_tokens=2))
    assert (text.text, text.finish_reason) == ("echo: a", "length")
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions", "/v1/completions"]
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {API_KEY}"


def test_rate_limit_then_success(server, http):
    server.fail(429, count=2, retry_after=0)
    assert make(server, http).chat([{"role": "user", "content": "x"}]).text == "echo: x"
    assert len(server.requests) == 3


def test_wrong_key_is_permanent_and_not_shown(server, http):
    with pytest.raises(LLMClientError, match="401 Unauthorized: Incorrect API key") as info:
        make(server, http, api_key="sk-wrong-key-123").chat([{"role": "user", "content": "x"}])
    assert "sk-wrong-key-123" not in str(info.value)
    assert len(server.requests) == 1


def test_garbled_answer(server, http):
    server.garble()
    with pytest.raises(LLMClientError, match="invalid JSON"):
        make(server, http).chat([{"role": "user", "content": "x"}])


def test_slow_server_times_out_within_the_retry_budget(server, http):
    server.latency = 0.5
    started = time.monotonic()
    with pytest.raises(LLMClientError, match="gave up after 2 attempts"):
        make(server, http, timeout_s=0.1, max_retries=1).chat([{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 2.0
