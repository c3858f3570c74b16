"""How a training loop reports progress; the CLI supplies a live bar, tests a recorder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["NullProgress", "Progress"]


@runtime_checkable
class Progress(Protocol):
    """Receives a loop's progress. Called from the loop's thread only."""

    def start(self, total_steps: int, first_step: int, description: str) -> None:
        """The loop will run steps ``first_step .. total_steps-1``."""
        ...

    def advance(self, step: int, metrics: Mapping[str, float]) -> None:
        """Step ``step`` finished with these (latest) metrics."""
        ...

    def note(self, message: str) -> None:
        """A one-line message for the user (resumed from ..., evaluation ..., saved ...)."""
        ...

    def finish(self) -> None:
        """The loop ended (normally, interrupted or failed)."""
        ...


class NullProgress:
    """Reports nothing."""

    def start(self, total_steps: int, first_step: int, description: str) -> None:
        """Ignore."""

    def advance(self, step: int, metrics: Mapping[str, float]) -> None:
        """Ignore."""

    def note(self, message: str) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""
