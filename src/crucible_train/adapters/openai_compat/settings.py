"""Settings of the OpenAI-compatible LLM client backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import (
    at_least,
    finite,
    greater_than,
    http_url,
    not_blank,
    required_when_selected_field,
    secret_field,
)

__all__ = ["OpenAICompatLLMSettings"]


@attrs.frozen(kw_only=True)
class OpenAICompatLLMSettings:
    """``llm.openai_compat``: an OpenAI-compatible API (``http.backend`` must not be noop).

    Args:
        base_url: the API root (vLLM, SGLang, llama.cpp, Ollama, OpenAI ...), usually
            ending in ``/v1``.
        model: the model name sent with every request; required when selected.
        api_key: sent as a Bearer token, only from ``${OPENAI_API_KEY}``; unset is fine
            for local servers.
        timeout_s: seconds per HTTP attempt.
        max_retries: extra attempts after a 429, 5xx, timeout or dropped connection.
        min_backoff_s: delay before the first retry (doubles each retry, with jitter).
        max_backoff_s: longest delay between attempts, also capping ``Retry-After``.
    """

    base_url: str = attrs.field(default="http://127.0.0.1:8000/v1", validator=http_url)
    model: str | None = required_when_selected_field(validator=not_blank)
    api_key: str | None = secret_field(env="OPENAI_API_KEY", default=None)
    timeout_s: float = attrs.field(default=60.0, validator=[finite, greater_than(0)])
    max_retries: int = attrs.field(default=4, validator=at_least(0))
    min_backoff_s: float = attrs.field(default=0.5, validator=[finite, greater_than(0)])
    max_backoff_s: float = attrs.field(default=20.0, validator=[finite, greater_than(0)])
