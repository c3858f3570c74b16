"""Settings of the Neptune metrics sink backend (adapter layer)."""

from __future__ import annotations

from typing import Any

import attrs

from crucible_train.config import (
    at_least,
    finite,
    greater_than,
    http_url,
    required_when_selected_field,
    secret_field,
)
from crucible_train.errors import ConfigurationError

__all__ = ["NeptuneMetricsSinkSettings"]


def _workspace_project(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        workspace, sep, project = value.partition("/")
        if not (sep and workspace.strip() and project.strip()) or "/" in project:
            raise ConfigurationError(
                f"{attribute.name}: expected 'workspace/project', got {value!r}"
            )


@attrs.frozen(kw_only=True)
class NeptuneMetricsSinkSettings:
    """``metrics.neptune``: Neptune over HTTP (``http.backend`` must not be noop).

    Args:
        api_token: Neptune API token, only from ``${NEPTUNE_API_TOKEN}``; required when
            neptune is listed.
        project: ``workspace/project``; required when neptune is listed.
        run_name: written to ``sys/name``; ``None`` leaves the server's default.
        api_url: Neptune API server; ``None`` takes it from the token.
        rate_per_s: sustained operation batches per second.
        burst: batches that may go out back to back.
        ping_s: seconds between liveness pings while idle.
        close_timeout_s: seconds ``close`` spends delivering; the rest stays spooled.
        tags: written to ``sys/tags``.
        request_timeout_s: seconds per HTTP request.
        max_backoff_s: longest wait between retries while the server is unreachable.
    """

    api_token: str = secret_field(env="NEPTUNE_API_TOKEN")
    project: str | None = required_when_selected_field(validator=_workspace_project)
    run_name: str | None = None
    api_url: str | None = attrs.field(default=None, validator=http_url)
    rate_per_s: float = attrs.field(default=1.0, validator=[finite, greater_than(0)])
    burst: int = attrs.field(default=4, validator=greater_than(0))
    ping_s: float = attrs.field(default=10.0, validator=[finite, greater_than(0)])
    close_timeout_s: float = attrs.field(default=30.0, validator=[finite, at_least(0)])
    tags: list[str] = attrs.field(factory=list)
    request_timeout_s: float = attrs.field(default=10.0, validator=[finite, greater_than(0)])
    max_backoff_s: float = attrs.field(default=30.0, validator=[finite, greater_than(0)])
