"""The validated configuration the container is built from (container layer)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import attrs

from crucible_train.config import redact
from crucible_train.container.describe import KeyPath, annotated_yaml
from crucible_train.container.train_recipes import TRAIN_KEY
from crucible_train.container.validation import METRICS_PORT

__all__ = ["ResolvedConfig"]


@attrs.frozen(kw_only=True, repr=False)
class ResolvedConfig:
    """A validated configuration: per port the chosen backend and its complete settings.

    Relative paths are already absolute and environment references already substituted,
    so this is exactly what the container will build. Unselected backend sub-blocks were
    validated but are not kept. Secrets are held in memory but never shown: ``repr`` and
    the default :meth:`as_dict` / :meth:`to_yaml` mask them as ``***``.

    Attributes:
        sources: where the layers came from (packaged file, user file, overrides), in
            merge order; for display.
        secret_keys: dotted keys of every secret field (``hub.huggingface.token``).
        descriptions: key path → one-line description from the owning settings class
            (see :func:`~crucible_train.container.describe.describe_keys`).
        blocks: the key paths that are blocks of the wiring diagram (nested mappings).
    """

    sources: tuple[str, ...]
    secret_keys: frozenset[str]
    _data: dict[str, Any] = attrs.field(alias="data")
    descriptions: Mapping[KeyPath, str] = attrs.field(factory=dict)
    blocks: frozenset[KeyPath] = frozenset()

    def secret_values(self) -> tuple[str, ...]:
        """The values of every set secret, for value-based redaction (never print them)."""
        values: list[str] = []
        for dotted in sorted(self.secret_keys):
            node: Any = self._data
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str) and node:
                values.append(node)
        return tuple(values)

    def as_dict(self, *, redact_secrets: bool = True) -> dict[str, Any]:
        """A deep copy of the configuration as plain data.

        Args:
            redact_secrets: replace set secrets with ``"***"`` (the default). Only the
                container passes ``False``, to hand adapters their credentials.
        """
        if redact_secrets:
            return redact(self._data, secret_keys=self.secret_keys)
        return copy.deepcopy(self._data)

    def backends(self) -> dict[str, str | list[str]]:
        """Port key → selected backend name (``metrics``: the list of sink names)."""
        chosen: dict[str, str | list[str]] = {}
        for port, block in self._data.items():
            if port == TRAIN_KEY:
                continue
            chosen[port] = list(block["sinks"]) if port == METRICS_PORT else block["backend"]
        return chosen

    def summary(self) -> str:
        """One line naming the chosen backends, e.g. ``training=noop, ..., metrics=[noop]``."""
        parts = []
        for port, chosen in self.backends().items():
            shown = f"[{', '.join(chosen)}]" if isinstance(chosen, list) else chosen
            parts.append(f"{port}={shown}")
        return ", ".join(parts)

    def to_yaml(self) -> str:
        """The configuration as YAML with secrets masked, headed by a comment on its sources.

        Every described key carries a trailing ``# description`` comment taken from its
        settings class; the YAML parses back to exactly :meth:`as_dict`.
        """
        header = "".join(f"# from: {source}\n" for source in self.sources)
        return header + annotated_yaml(self.as_dict(), self.descriptions, self.blocks)

    def __repr__(self) -> str:
        return f"ResolvedConfig(sources={list(self.sources)!r}, backends={self.backends()!r})"
