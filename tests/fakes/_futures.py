"""Futures the fakes return: already resolved, optionally noting in an event log when a
caller waits for them (so a test can check what was submitted before what was awaited)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class _Noted(Future[Any]):
    """A finished future that appends ``await <label>`` to ``events`` when waited on."""

    def __init__(self, events: list[str], label: str) -> None:
        super().__init__()
        self._events = events
        self._label = label

    def result(self, timeout: float | None = None) -> Any:
        self._events.append(f"await {self._label}")
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._events.append(f"await {self._label}")
        return super().exception(timeout)


def done(value: T, events: list[str] | None = None, label: str = "") -> Future[T]:
    """A future holding ``value``; waiting on it is noted in ``events`` when given."""
    future: Future[T] = Future() if events is None else _Noted(events, label)
    future.set_result(value)
    return future


def failed(error: BaseException, events: list[str] | None = None, label: str = "") -> Future[T]:
    """A future failed with ``error``; waiting on it is noted in ``events`` when given."""
    future: Future[T] = Future() if events is None else _Noted(events, label)
    future.set_exception(error)
    return future
