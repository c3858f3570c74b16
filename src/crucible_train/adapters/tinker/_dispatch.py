"""Ordered submission of SDK calls, with our futures resolved from the SDK's.

Every port call returns a :class:`concurrent.futures.Future` at once and queues a *step*
for one dispatcher thread per client. The dispatcher runs steps strictly in submission
order; a step submits its request to the SDK (which pipelines requests without waiting)
and returns a *finish* callable, which waits for the SDK's result and converts it on a
helper thread. A step may block when ordering needs it: a custom loss waits for its
forward pass before submitting the backward, so a later ``optim_step`` cannot reach the
server first. With ``ordered=True`` our futures also resolve in submission order.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, Generic, TypeVar

from crucible_train.errors import BackendTimeoutError

__all__ = ["Dispatcher", "Finish", "Lazy", "Step", "Translate"]

T = TypeVar("T")
Finish = Callable[[], Any]
"""Waits for one SDK result and returns our value (runs on a helper thread)."""
Step = Callable[[], Finish]
"""Submits one call to the SDK, in order, and returns how to finish it."""
Translate = Callable[[BaseException, str], BaseException]
"""Turns any exception of ``operation`` into the typed error the future fails with."""

_STOP: Final = object()


def _finish(
    future: Future[Any],
    operation: str,
    finish: Finish,
    translate: Translate,
    previous: Future[Any] | None,
) -> None:
    try:
        result = finish()
    except BaseException as exc:  # every failure must reach the future, never the thread
        outcome: tuple[bool, Any] = (False, translate(exc, operation))
    else:
        outcome = (True, result)
    if previous is not None:
        # Resolve in submission order; the previous future always ends (result, error
        # or timeout), so this wait is bounded by the previous call's own wait.
        previous.exception()
    if outcome[0]:
        future.set_result(outcome[1])
    else:
        future.set_exception(outcome[1])


def _raiser(exc: BaseException) -> Finish:
    def finish() -> Any:
        raise exc

    return finish


def _work(calls: queue.SimpleQueue[Any], name: str, ordered: bool, sequential: bool) -> None:
    """The dispatcher loop; module-level so an abandoned client can be collected."""
    previous: Future[Any] | None = None
    while True:
        item = calls.get()
        if item is _STOP:
            return
        future, operation, step, translate = item
        del item
        if not future.set_running_or_notify_cancel():
            continue
        try:
            finish = step()
        except BaseException as exc:  # a failing step must never end the dispatcher
            finish = _raiser(exc)
        threading.Thread(
            target=_finish,
            args=(future, operation, finish, translate, previous if ordered else None),
            name=f"{name}-result",
            daemon=True,
        ).start()
        previous = future
        if sequential:
            # The next call is sent only once this one has a result (or failed, or timed
            # out): for servers that reorder queued requests (skyrl-tx 0.3.0).
            future.exception()
        del future, step, finish


class Dispatcher:
    """One dispatcher thread per client (see the module docstring).

    Args:
        name: thread name prefix, for debugging.
        ordered: resolve futures in submission order (the training port requires it).
        sequential: send a call only after the previous one's result arrived.
    """

    def __init__(self, *, name: str, ordered: bool, sequential: bool = False) -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=_work, args=(self._calls, name, ordered, sequential), name=name, daemon=True
        )
        self._thread.start()
        self._stop = weakref.finalize(self, self._calls.put, _STOP)

    def submit(self, operation: str, step: Step, translate: Translate) -> Future[Any]:
        """Queue ``step``; the returned future gets ``finish()``'s value or typed error."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(translate(RuntimeError("the client is closed"), operation))
                return future
            self._calls.put((future, operation, step, translate))
        return future

    def fail(self, operation: str, exc: BaseException, translate: Translate) -> Future[Any]:
        """Queue a call that fails with ``exc`` (kept in order with the other calls)."""
        return self.submit(operation, lambda: _raiser(exc), translate)

    def close(self) -> None:
        """Stop the dispatcher after the calls already queued. Idempotent."""
        with self._lock:
            self._closed = True
        self._stop()


class Lazy(Generic[T]):
    """A value (an SDK client) built once, on a helper thread, with bounded waits.

    Building a client can block for minutes inside the SDK (0.38 retries an unreachable
    server for up to five minutes before failing), so the build runs on its own daemon
    thread and callers wait at most ``timeout``. A failed build is retried by the next
    :meth:`get`; a build still running is waited for again, never started twice.
    """

    def __init__(self, build: Callable[[], T], *, name: str) -> None:
        self._build = build
        self._name = name
        self._lock = threading.Lock()
        self._pending: Future[T] | None = None

    def _run(self, future: Future[T]) -> None:
        try:
            future.set_result(self._build())
        except BaseException as exc:  # reported to every waiter through the future
            future.set_exception(exc)

    def get(self, timeout: float | None, operation: str) -> T:
        """The value; raises what the build raised, or ``BackendTimeoutError``."""
        with self._lock:
            pending = self._pending
            if pending is None or (pending.done() and pending.exception() is not None):
                pending = self._pending = Future()
                threading.Thread(
                    target=self._run, args=(pending,), name=self._name, daemon=True
                ).start()
        try:
            return pending.result(timeout=timeout)
        except TimeoutError:
            if pending.done():
                raise
            raise BackendTimeoutError(
                f"{operation}: no connection to the Tinker service within "
                f"future_timeout_s={timeout:g} s; the SDK keeps retrying an unreachable "
                "server (0.38: for up to 5 minutes) and the next call waits for it again"
            ) from None

    def discard(self, closer: Callable[[T], None]) -> None:
        """Hand the value to ``closer`` once built (now, or when a pending build ends).

        Used on close: a connection still being retried in the background must not
        outlive its client (its session would keep heart-beating and retrying).
        """
        with self._lock:
            pending = self._pending

        def close(future: Future[T]) -> None:
            if not future.cancelled() and future.exception() is None:
                closer(future.result())

        if pending is not None:
            pending.add_done_callback(close)
