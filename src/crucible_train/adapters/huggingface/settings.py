"""Settings of the Hugging Face hub backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import finite, greater_than, path_field, secret_field

__all__ = ["HuggingFaceHubSettings"]


@attrs.frozen(kw_only=True)
class HuggingFaceHubSettings:
    """``hub.huggingface``: downloads through ``huggingface_hub``.

    Args:
        endpoint: hub URL; ``None`` uses huggingface_hub's default (or ``HF_ENDPOINT``).
        cache_dir: download cache directory; ``None`` uses huggingface_hub's default.
        token: access token, only from ``${HF_TOKEN}``; ``None`` for public repositories.
        offline: never touch the network; only cached files are returned.
        timeout: seconds to wait for the hub before giving up.
    """

    endpoint: str | None = None
    cache_dir: str | None = path_field(default=None)
    token: str | None = secret_field(env="HF_TOKEN", default=None)
    offline: bool = False
    timeout: float = attrs.field(default=10.0, validator=[finite, greater_than(0)])
