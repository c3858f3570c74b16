"""The training client's one worker thread: queued calls run in order, each typed on failure.

:class:`~crucible_train.adapters.local_torch.training_client.LocalTorchTrainingClient`
queues ``(future, operation, call)`` items on a :class:`queue.SimpleQueue` and starts a
thread on :func:`run_calls`; :data:`STOP` ends it. A failing call fails its own future (our
errors unchanged, anything else as a :class:`~crucible_train.errors.TrainingClientError`)
and the worker goes on with the next call.
"""

from __future__ import annotations

import queue
from typing import Any, Final

from crucible_train.errors import CrucibleError, TrainingClientError

__all__ = ["STOP", "run_calls"]

STOP: Final = object()
"""Queued last: the worker returns when it takes this from the queue."""


def _typed(operation: str, exc: BaseException) -> BaseException:
    """The error a future fails with: ours unchanged, anything else a TrainingClientError."""
    if isinstance(exc, CrucibleError):
        return exc
    error = TrainingClientError(f"{operation} failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def run_calls(calls: queue.SimpleQueue[Any]) -> None:
    """The worker loop: run queued calls in order until the stop marker arrives.

    A module-level function holding only the queue, so an abandoned client can be
    garbage-collected (its finalizer then sends the stop marker).
    """
    while True:
        item = calls.get()
        if item is STOP:
            return
        future, operation, call = item
        del item
        if future.set_running_or_notify_cancel():
            try:
                result = call()
            except BaseException as exc:  # a failing call must never end the worker
                future.set_exception(_typed(operation, exc))
            else:
                future.set_result(result)
        # Drop references to the finished call (and through it, to the client) while idle.
        del future, call
