"""The wire contract of a network sink (adapter layer): spooled rows, ``Transport``, errors.

A sink's transport (W&B, Neptune) implements :class:`Transport`; the sender drives it
from its own thread. :func:`stops_delivery` says which of a transport's errors mean that
every later request would fail too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from crucible_train.adapters.delivery.constants import STOP_STATUSES
from crucible_train.errors import PermanentHttpError

__all__ = ["SpooledRow", "Transport", "describe_error", "stops_delivery"]


@attrs.frozen(kw_only=True)
class SpooledRow:
    """One unit of work, persisted in the spool before it is sent.

    Attributes:
        seq: 0-based position in the run's whole life, contiguous and kept across
            restarts; the order rows are delivered in.
        kind: what the row holds, defined by the transport (``"metrics"``, ``"hparams"``,
            ``"text"`` ...).
        payload: the row's content, JSON-safe (read back from the spool).
        time: Unix time (seconds) when the row was submitted.
    """

    seq: int
    kind: str
    payload: Mapping[str, Any]
    time: float


@runtime_checkable
class Transport(Protocol):
    """The wire half of a network sink, driven by the sender's thread.

    Every method may raise :class:`~crucible_train.errors.RetryableHttpError` (the sender
    backs off and calls again) or :class:`~crucible_train.errors.PermanentHttpError`
    (the sender stops, or sets the refused row aside: see
    :mod:`crucible_train.adapters.delivery.send_loop`). Called from one thread.
    """

    def start(self, state: dict[str, Any]) -> dict[str, Any]:
        """Create or resume the remote run.

        Args:
            state: the run state persisted by the last successful ``start`` or ``send``
                (``{}`` the very first time).

        Returns:
            The state to persist (ids, offsets ...). JSON-safe; never a secret.
        """
        ...

    def send(self, rows: Sequence[SpooledRow]) -> Mapping[str, Any] | None:
        """Deliver ``rows`` (contiguous, in ``seq`` order).

        Must be idempotent per row: rows whose acknowledgement was lost are sent again,
        and must not be stored twice. A transport whose run state changes as rows are
        delivered (offsets, counters) returns the new state, which the sender persists
        atomically with the acknowledgement; ``None`` means "unchanged". On an exception
        the transport must leave its state as before the call.
        """
        ...

    def heartbeat(self) -> None:
        """Tell the service the run is alive (called when nothing was sent for a while)."""
        ...

    def finish(self, exit_code: int) -> None:
        """Mark the run finished (``exit_code`` 0) or failed (anything else)."""
        ...


def describe_error(exc: BaseException) -> str:
    """A transport error as one line for the log, with its HTTP status when it has one."""
    text = str(exc) or type(exc).__name__
    status = getattr(exc, "status", None)
    if status is not None and str(status) not in text:
        text = f"HTTP {status}: {text}"
    return text


def stops_delivery(exc: BaseException) -> bool:
    """Whether a permanent ``send`` error means every later request would fail too.

    401, 403, 404 and 501 (bad key, no access, run or project gone, unsupported server)
    do; any other permanent error concerns the rows sent. An exception that is not the
    service talking (a bug, a broken client) also stops: looping on it helps nobody.
    """
    if not isinstance(exc, PermanentHttpError):
        return True
    return exc.status in STOP_STATUSES
