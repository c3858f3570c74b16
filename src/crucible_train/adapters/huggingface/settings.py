"""Settings of the Hugging Face hub backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import finite, greater_than, path_field, secret_field

__all__ = ["HuggingFaceHubSettings"]


@attrs.frozen(kw_only=True)
class HuggingFaceHubSettings:
    """``hub.huggingface``: downloads through ``huggingface_hub``.

    Args:
        endpoint: hub URL; ``None`` means https://huggingface.co (``HF_ENDPOINT`` is ignored).
        cache_dir: download cache directory; ``None`` uses huggingface_hub's default.
        token: access token, only from ``${HF_TOKEN}``; unset is fine for public repositories.
        offline: ``true``: never touch the network, only return files already in the cache.
        timeout: seconds to wait for the hub before giving up.
    """

    endpoint: str | None = None
    cache_dir: str | None = path_field(default=None)
    token: str | None = secret_field(env="HF_TOKEN", default=None)
    offline: bool = False
    timeout: float = attrs.field(default=10.0, validator=[finite, greater_than(0)])
