"""Settings of the Weights & Biases metrics sink backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.adapters.wandb.metrics_sink import DEFAULT_BASE_URL
from crucible_train.config import (
    at_least,
    finite,
    greater_than,
    http_url,
    not_blank,
    required_when_selected_field,
    secret_field,
)

__all__ = ["WandbMetricsSinkSettings"]


@attrs.frozen(kw_only=True)
class WandbMetricsSinkSettings:
    """``metrics.wandb``: Weights & Biases over HTTP (``http.backend`` must not be noop).

    Args:
        api_key: W&B API key, only from ``${WANDB_API_KEY}``; required when wandb is listed.
        project: W&B project; required when wandb is listed.
        entity: W&B user or team; ``None`` uses the key's default entity.
        run_name: display name of the run; ``None`` lets W&B pick one.
        run_id: run id to create or resume; ``None`` resumes ``run_dir``'s run or makes one.
        base_url: W&B API server (self-hosted: your server's address).
        app_url: W&B web UI used for the run URL; ``None`` derives it from ``base_url``.
        rate_per_s: sustained requests per second to the history stream (rows are batched).
        burst: requests that may go out back to back.
        heartbeat_s: seconds between keep-alive posts while idle.
        close_timeout_s: seconds ``close`` spends delivering; the rest stays spooled.
        min_backoff_s: first retry delay after a failed request.
        max_backoff_s: longest retry delay.
        request_timeout_s: seconds per HTTP request.
    """

    api_key: str = secret_field(env="WANDB_API_KEY")
    project: str | None = required_when_selected_field(validator=not_blank)
    entity: str | None = attrs.field(default=None, validator=not_blank)
    run_name: str | None = None
    run_id: str | None = attrs.field(default=None, validator=not_blank)
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, validator=http_url)
    app_url: str | None = attrs.field(default=None, validator=http_url)
    rate_per_s: float = attrs.field(default=0.5, validator=[finite, greater_than(0)])
    burst: int = attrs.field(default=4, validator=greater_than(0))
    heartbeat_s: float = attrs.field(default=30.0, validator=[finite, greater_than(0)])
    close_timeout_s: float = attrs.field(default=30.0, validator=[finite, at_least(0)])
    min_backoff_s: float = attrs.field(default=2.0, validator=[finite, greater_than(0)])
    max_backoff_s: float = attrs.field(default=60.0, validator=[finite, greater_than(0)])
    request_timeout_s: float = attrs.field(default=30.0, validator=[finite, greater_than(0)])
