"""Model facts from the ``model_info`` port, for the ``train`` summary and ``config check``.

Only backends in :data:`OFFLINE_MODEL_INFO` are asked: ``local_torch`` answers from its
settings with a shape-only model on torch's ``meta`` device (no weights, no memory, no
random numbers drawn), and ``noop`` knows nothing. A service backend (``tinker``) would
open a session and create a model on the service to answer, so the commands do not ask
it. What a backend cannot tell is left out; a typed error becomes a ``problem``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from crucible_train.errors import CrucibleError
from crucible_train.ports.model_info import ModelConfig, ModelInfo

__all__ = ["OFFLINE_MODEL_INFO", "ModelFacts", "ask_model_info"]

OFFLINE_MODEL_INFO = frozenset({"local_torch", "noop"})
"""``model_info`` backends that answer without contacting a service."""


@attrs.frozen(kw_only=True)
class ModelFacts:
    """What the ``model_info`` port said about a model.

    Attributes:
        config: the model's configuration (every field optional).
        parameters: the parameter count, or ``None`` when the backend cannot tell.
        problem: why the port could not answer (``ModelInfoError: ...``), else ``None``.
    """

    config: ModelConfig = attrs.field(factory=ModelConfig)
    parameters: int | None = None
    problem: str | None = None

    def description(self) -> str | None:
        """``qwen3, 4 layers, hidden 128, 4 heads, vocab 512, context 2048`` (what is known)."""
        config = self.config
        parts = [
            config.model_name,
            config.architecture,
            None if config.num_layers is None else f"{config.num_layers} layers",
            None if config.hidden_size is None else f"hidden {config.hidden_size}",
            None if config.num_heads is None else f"{config.num_heads} heads",
            None if config.vocab_size is None else f"vocab {config.vocab_size}",
            None if config.max_seq_length is None else f"context {config.max_seq_length}",
        ]
        known = [part for part in parts if part]
        return ", ".join(known) if known else None

    def rows(self) -> list[tuple[str, str]]:
        """Summary-table rows: ``model`` and ``parameters`` where known."""
        if self.problem is not None:
            return [("model", f"unknown ({self.problem})")]
        rows = []
        description = self.description()
        if description is not None:
            rows.append(("model", description))
        if self.parameters is not None:
            rows.append(("parameters", f"{self.parameters:,}"))
        return rows

    def line(self) -> str:
        """One line: description and parameter count, ``unknown`` when nothing is known."""
        if self.problem is not None:
            return f"unknown ({self.problem})"
        parts = [self.description()]
        if self.parameters is not None:
            parts.append(f"{self.parameters:,} parameters")
        known = [part for part in parts if part]
        return "; ".join(known) if known else "unknown (the backend knows no model)"


def ask_model_info(model_info: Callable[[], ModelInfo]) -> ModelFacts:
    """Ask the port built by ``model_info`` for the model's configuration and size.

    Args:
        model_info: builds (or returns) the port, e.g. the container's ``model_info``
            provider; errors while building it are reported like the port's own.

    Returns:
        The facts, or facts holding the ``problem`` when a typed error was raised (the
        adapter is unavailable, the model's config is unreadable, ...).
    """
    try:
        port = model_info()
        config = port.get_config()
        parameters = port.count_parameters()
    except CrucibleError as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        return ModelFacts(problem=f"{type(exc).__name__}: {text}".rstrip(": "))
    return ModelFacts(config=config, parameters=parameters)
