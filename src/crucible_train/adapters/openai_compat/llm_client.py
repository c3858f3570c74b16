"""LLM client for OpenAI-compatible servers (adapter layer, over the HttpClient port).

Speaks the ``/chat/completions`` and ``/completions`` endpoints that OpenAI, vLLM,
SGLang, llama.cpp's server, Ollama and most hosted APIs share. It needs no SDK: requests
go through the injected :class:`~crucible_train.ports.http.HttpClient`, whose typed
errors decide what is retried.

* :class:`~crucible_train.errors.RetryableHttpError` (429, 5xx, timeouts, dropped
  connections) is retried up to ``max_retries`` times with exponential back-off and
  jitter; a server's ``Retry-After`` is honoured (capped at ``max_backoff_s``).
* Every other failure, and a retryable one that outlives the retries, becomes an
  :class:`~crucible_train.errors.LLMClientError` carrying the server's message; the API
  key never appears in it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.errors import (
    ConfigurationError,
    HttpClientError,
    LLMClientError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse
from crucible_train.ports.llm import Completion, LLMClient, LLMParams

__all__ = ["OpenAICompatLLMClient"]

_SHOWN_BODY = 200  # characters of a non-OpenAI answer quoted in an error message
_NOT_OPENAI = "(not an OpenAI-compatible answer)"

# Module-level so tests can replace the clock without a constructor argument.
_sleep = time.sleep


class OpenAICompatLLMClient(LLMClient):
    """Chat and completion over an OpenAI-compatible HTTP API. Thread-safe.

    Args:
        http: the HTTP client requests go through (the container injects the ``http``
            port's adapter).
        base_url: the API root, ending in ``/v1`` for most servers.
        model: the ``model`` sent with every request.
        api_key: sent as ``Authorization: Bearer``; ``None`` for local servers without
            authentication.
        timeout_s: seconds per HTTP attempt.
        max_retries: extra attempts after a retryable failure (0: never retry).
        min_backoff_s: delay before the first retry; doubles with each retry.
        max_backoff_s: longest delay between attempts (also caps ``Retry-After``).

    Raises:
        ConfigurationError: an argument is out of range.
    """

    def __init__(
        self,
        *,
        http: HttpClient,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
    ) -> None:
        problems: list[str] = []
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            problems.append(f"base_url is {base_url!r}; use an http:// or https:// URL")
        if not isinstance(model, str) or not model.strip():
            problems.append("model must be a non-empty string (the model name the server serves)")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            problems.append("api_key must be a non-empty string or None")  # never quoted
        if not _positive(timeout_s):
            problems.append(f"timeout_s is {timeout_s!r}; use a finite number > 0")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            problems.append(f"max_retries is {max_retries!r}; use a whole number >= 0")
        if not _positive(min_backoff_s):
            problems.append(f"min_backoff_s is {min_backoff_s!r}; use a finite number > 0")
        if not _positive(max_backoff_s):
            problems.append(f"max_backoff_s is {max_backoff_s!r}; use a finite number > 0")
        if problems:
            raise ConfigurationError(*(f"OpenAICompatLLMClient: {p}" for p in problems))
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._api_key = api_key
        self._timeout_s = float(timeout_s)
        self._max_retries = max_retries
        self._min_backoff_s = float(min_backoff_s)
        self._max_backoff_s = max(float(max_backoff_s), float(min_backoff_s))

    def __repr__(self) -> str:
        # The key is only said to be set, never shown.
        key = "'***'" if self._api_key else "None"
        return (
            f"OpenAICompatLLMClient(base_url={self._base_url!r}, model={self._model!r}, "
            f"api_key={key})"
        )

    def chat(
        self, messages: Sequence[Mapping[str, Any]], params: LLMParams | None = None
    ) -> Completion:
        """Answer an OpenAI-style message list via ``POST {base_url}/chat/completions``.

        Raises:
            LLMClientError: the server refused, kept failing, or answered in another format.
        """
        body = {"model": self._model, "messages": [dict(m) for m in messages]}
        answer = self._post("chat/completions", body, params)
        choice = _first_choice(answer, "chat/completions")
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            raise LLMClientError(
                f"{self._model}: chat/completions returned a non-text message content {_NOT_OPENAI}"
            )
        return _completion(answer, choice, content or "")

    def complete(self, prompt: str, params: LLMParams | None = None) -> Completion:
        """Continue ``prompt`` via ``POST {base_url}/completions``.

        Raises:
            LLMClientError: the server refused, kept failing, or answered in another format.
        """
        answer = self._post("completions", {"model": self._model, "prompt": prompt}, params)
        choice = _first_choice(answer, "completions")
        text = choice.get("text")
        if not isinstance(text, str):
            raise LLMClientError(f"{self._model}: completions returned no text {_NOT_OPENAI}")
        return _completion(answer, choice, text)

    # --- internals ---------------------------------------------------------------------

    def _post(self, endpoint: str, body: dict[str, Any], params: LLMParams | None) -> Any:
        if params is not None:
            body.update(_params_body(params))
        url = f"{self._base_url}/{endpoint}"
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        response = self._send(url, endpoint, headers, body)
        try:
            return response.json()
        except ValueError:
            shown = self._scrub(" ".join(response.text.split())[:_SHOWN_BODY])
            raise LLMClientError(
                f"{self._model}: {endpoint}: server returned invalid JSON {_NOT_OPENAI}: {shown!r}"
            ) from None

    def _send(
        self, url: str, endpoint: str, headers: dict[str, str], body: dict[str, Any]
    ) -> HttpResponse:
        attempt = 0
        while True:
            try:
                return self._http.request(
                    "POST", url, headers=headers, json=body, timeout=self._timeout_s
                )
            except RetryableHttpError as exc:
                if attempt >= self._max_retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise LLMClientError(
                        f"{self._model}: {endpoint}: gave up after {tries}: {self._scrub(str(exc))}"
                    ) from exc
                _sleep(self._delay(attempt, exc.retry_after))
                attempt += 1
            except HttpClientError as exc:
                raise LLMClientError(f"{self._model}: {endpoint}: {self._scrub(str(exc))}") from exc

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self._max_backoff_s, self._min_backoff_s * 2.0**attempt)
        # Equal jitter: at least half the back-off, so concurrent callers spread out
        # without retrying immediately.
        delay = random.uniform(backoff / 2.0, backoff)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self._max_backoff_s)

    def _scrub(self, text: str) -> str:
        # The HTTP client scrubs credentials already; this guards other HttpClient adapters.
        return text.replace(self._api_key, "***") if self._api_key else text


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _params_body(params: LLMParams) -> dict[str, Any]:
    """The request fields of ``params``; unset ones are left out (the server's default)."""
    fields: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": list(params.stop) if params.stop else None,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _first_choice(answer: Any, endpoint: str) -> dict[str, Any]:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMClientError(f"{endpoint}: server returned no 'choices' {_NOT_OPENAI}")
    first: dict[str, Any] = choices[0]
    return first


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _completion(answer: dict[str, Any], choice: dict[str, Any], text: str) -> Completion:
    usage = answer.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    finish = choice.get("finish_reason")
    return Completion(
        text=text,
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )
