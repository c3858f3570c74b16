"""Settings of the tiktoken rank-file backend (adapter layer)."""

from __future__ import annotations

from typing import Any

import attrs

from crucible_train.adapters.tiktoken_format.tokenizer import PRESETS
from crucible_train.config import not_blank, path_field
from crucible_train.errors import ConfigurationError

__all__ = ["TiktokenTokenizerSettings"]


def _preset(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in PRESETS:
        raise ConfigurationError(f"{attribute.name}: expected one of {sorted(PRESETS)} or null")


@attrs.frozen(kw_only=True)
class TiktokenTokenizerSettings:
    """``tokenizer.tiktoken``: a local tiktoken rank file (e.g. ``o200k_base.tiktoken``).

    Args:
        path: the rank file (base64 token, rank per line), plain or gzipped.
        preset: special tokens to add: ``o200k_base``, ``o200k_harmony`` (gpt-oss) or null.
    """

    path: str = path_field(validator=not_blank)
    preset: str | None = attrs.field(default=None, validator=_preset)
