"""Neptune metrics sink (adapter layer, HTTP port only): the neptune-client 1.x REST protocol.

The hosted Neptune service (app.neptune.ai) shut down on 5 March 2026, so this sink only
makes sense against a self-hosted Neptune server, or a fake in tests: there is **no
default host**; the address comes from the API token or ``api_url``.

Every call turns into Neptune operations (see :mod:`._operations` for the value rules)
that are handed to the shared :class:`~crucible_train.adapters.delivery.sender.ReliableSender`:
the caller never blocks, rows are spooled to ``RUN_DIR/spool/neptune/`` and delivered in
order under a rate limit, with retries, pings while idle, and ``crucible-train logs sync
RUN_DIR`` to deliver what a dead process left behind.

A restarted process with the same ``run_dir`` continues the same Neptune run: the run is
created with a ``customId`` kept in the spool's ``sink.json``, and creating a run with a
``customId`` the project already has returns that run.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

from crucible_train.adapters._metrics_input import (
    check_hparams,
    check_metrics,
    check_open,
    check_step,
    check_text,
)
from crucible_train.adapters.delivery.constants import SINK_FILE
from crucible_train.adapters.delivery.options import count_problem, positive_problem
from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.adapters.delivery.spool import read_sink_info, spool_dir_for, write_sink_info
from crucible_train.adapters.delivery.sync import SpoolingSink
from crucible_train.adapters.neptune._auth import (
    TOKEN_ENV_VAR,
    parse_api_token,
    parse_project,
)
from crucible_train.adapters.neptune._operations import (
    Operation,
    hparam_operations,
    metric_operations,
    start_operations,
    text_operation,
)
from crucible_train.adapters.neptune._transport import NeptuneTransport, run_url
from crucible_train.errors import ConfigurationError
from crucible_train.ports.http import HttpClient
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["SINK_KIND", "NeptuneMetricsSink"]

_log = logging.getLogger(__name__)

SINK_KIND: Final = "neptune"
"""The sink's name in ``containers.yaml`` and in its spool's ``sink.json``."""

_SERVICE: Final = "Neptune"
_SINK: Final = f"{_SERVICE} sink"  # how messages name this sink


def _check_options(
    *,
    rate_per_s: float,
    burst: int,
    ping_s: float,
    close_timeout_s: float,
    request_timeout_s: float,
    min_backoff_s: float,
    max_backoff_s: float,
) -> None:
    found = [
        positive_problem(name, value)
        for name, value in (
            ("rate_per_s", rate_per_s),
            ("ping_s", ping_s),
            ("close_timeout_s", close_timeout_s),
            ("request_timeout_s", request_timeout_s),
            ("min_backoff_s", min_backoff_s),
            ("max_backoff_s", max_backoff_s),
        )
    ]
    found.append(count_problem("burst", burst))
    problems = [f"{_SINK}: {problem}" for problem in found if problem is not None]
    if problems:
        raise ConfigurationError(*problems)


def _custom_id(spool_dir: Path) -> str:
    """The run's stable ``customId``: from ``sink.json`` when this directory has one.

    It must be on disk before the first run-creation request: a process that dies after
    the server created the run but before it heard back would otherwise create a second
    run on restart.
    """
    if (spool_dir / SINK_FILE).is_file():
        try:
            found = read_sink_info(spool_dir).get("custom_id")
        except ConfigurationError as exc:
            _log.warning("%s; this run directory starts a new Neptune run", exc)
        else:
            if isinstance(found, str) and found:
                return found
    return f"crucible-{uuid.uuid4().hex}"


class NeptuneMetricsSink(MetricsSink, SpoolingSink):
    """Logs a run to a (self-hosted) Neptune server through its 1.x REST API.

    There is no default server: the hosted app.neptune.ai shut down in March 2026, so the
    address comes from the API token (``api_url``, else ``api_address``) or from the
    ``api_url`` argument.

    What is written:

    * at start: ``sys/name`` (``run_name``), ``sys/failed = false``, ``sys/tags``;
    * :meth:`log_hparams`: ``parameters/<a>/<b>`` fields (see :mod:`._operations`);
    * :meth:`log_metrics`: one series point per metric at the path named like the metric
      (``train/loss``); NaN and infinities are dropped (float series cannot hold them),
      reported once per name;
    * :meth:`log_long_text`: a string field at ``key``, cut to 16384 characters (the
      SDK's limit), reported once per key when cut;
    * :meth:`close` with a non-zero ``exit_code``: ``sys/failed = true``.

    Args:
        http: the HTTP client; the only way the sink talks to the network.
        run_dir: the run directory; the spool lives in ``run_dir/spool/neptune``.
        api_token: the Neptune API token (``NEPTUNE_API_TOKEN``).
        project: ``'workspace/project'``.
        run_name: written to ``sys/name``; ``None`` leaves the server's default.
        api_url: API address overriding the one inside the token (self-hosted servers).
        rate_per_s: sustained requests per second.
        burst: requests that may go out back to back.
        ping_s: seconds between pings while nothing else is sent (the SDK pings every 10).
        close_timeout_s: seconds :meth:`close` waits for delivery; what is left stays
            spooled for ``crucible-train logs sync``.
        tags: written to ``sys/tags``.
        request_timeout_s: seconds per HTTP request.
        min_backoff_s: first wait before retrying a failed request (doubles each time);
            a ``Retry-After`` from the server wins.
        max_backoff_s: longest wait between retries while the server is unreachable (the
            SDK's cap is 30 s).

    Raises:
        MissingSecretError: ``api_token`` is missing or empty.
        ConfigurationError: the token is malformed (the message never contains it), the
            project is not ``workspace/project``, or an option is out of range, or
            another process uses the same ``run_dir``.

    Construction does no network I/O, so it never blocks: the run is created by the
    background sender. Failures it cannot retry (a rejected token, a missing project)
    are logged once at ERROR and also reported by :attr:`delivery_error`; the rows stay
    spooled for ``logs sync``. Secrets never appear in logs, errors, ``repr`` or files.
    Calls come from one thread at a time, as the port specifies.
    """

    SINK_KIND: ClassVar[str] = SINK_KIND

    def __init__(
        self,
        *,
        http: HttpClient,
        run_dir: str | os.PathLike[str],
        api_token: str,
        project: str,
        run_name: str | None = None,
        api_url: str | None = None,
        rate_per_s: float = 1.0,
        burst: int = 4,
        ping_s: float = 10.0,
        close_timeout_s: float = 30.0,
        tags: Sequence[str] = (),
        request_timeout_s: float = 10.0,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        credentials = parse_api_token(api_token, api_url=api_url)
        workspace, name = parse_project(project)
        _check_options(
            rate_per_s=rate_per_s,
            burst=burst,
            ping_s=ping_s,
            close_timeout_s=close_timeout_s,
            request_timeout_s=request_timeout_s,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
            raise ConfigurationError("Neptune sink: tags must be a list of strings")
        self._project = f"{workspace}/{name}"
        self._close_timeout = float(close_timeout_s)
        spool_dir = spool_dir_for(run_dir, SINK_KIND)
        custom_id = _custom_id(spool_dir)
        write_sink_info(
            spool_dir,
            SINK_KIND,
            {"custom_id": custom_id, "project": self._project, "api_url": credentials.api_url},
        )
        self._transport = NeptuneTransport(
            http=http,
            credentials=credentials,
            project=self._project,
            custom_id=custom_id,
            timeout=float(request_timeout_s),
        )
        self._sender = ReliableSender(
            transport=self._transport,
            spool_dir=spool_dir,
            rate_per_s=float(rate_per_s),
            burst=burst,
            heartbeat_s=float(ping_s),
            min_backoff_s=float(min_backoff_s),
            max_backoff_s=max(float(min_backoff_s), float(max_backoff_s)),
            name=_SERVICE,
        )
        self._closed = False
        self._next_step = 0
        self._dropped: set[str] = set()
        self._cut_texts: set[str] = set()
        self._sender.submit("init", {"ops": start_operations(name=run_name, tags=list(tags))})

    def __repr__(self) -> str:
        return (
            f"NeptuneMetricsSink(project={self._project!r}, "
            f"spool_dir={str(self._sender.spool_dir)!r})"
        )

    # --- logs sync ----------------------------------------------------------------------

    @classmethod
    def resume_transport(
        cls, spool_dir: Path, *, http: HttpClient, environ: Mapping[str, str]
    ) -> NeptuneTransport:
        """Rebuild the transport of the run spooled in ``spool_dir`` (for ``logs sync``).

        ``crucible-train logs sync`` calls the inherited :meth:`sync_spool`, which calls
        this. The run's identity (``customId``, project, address) comes from the spool's
        ``sink.json``; the token from ``NEPTUNE_API_TOKEN`` in ``environ``.

        Raises:
            MissingSecretError: ``NEPTUNE_API_TOKEN`` is not set.
            ConfigurationError: ``sink.json`` is missing, unreadable or not Neptune's, or
                the token is malformed.
        """
        info = read_sink_info(spool_dir)
        if info.get("kind") != SINK_KIND:
            raise ConfigurationError(f"{spool_dir} is a {info.get('kind')!r} spool, not Neptune's")
        custom_id, project, api_url = (info.get(key) for key in ("custom_id", "project", "api_url"))
        if not isinstance(custom_id, str) or not isinstance(project, str):
            raise ConfigurationError(f"{spool_dir / SINK_FILE} lacks the Neptune run identity")
        credentials = parse_api_token(
            environ.get(TOKEN_ENV_VAR), api_url=api_url if isinstance(api_url, str) else None
        )
        return NeptuneTransport(
            http=http, credentials=credentials, project=project, custom_id=custom_id
        )

    # --- MetricsSink --------------------------------------------------------------------

    def _submit(self, kind: str, operations: list[Operation]) -> None:
        if operations:
            self._sender.submit(kind, {"ops": operations})

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Write ``config`` as ``parameters/...`` fields (nested keys become ``a/b``)."""
        check_open(self._closed, "log_hparams", _SINK)
        self._submit("hparams", hparam_operations(check_hparams(config)))

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Append one point per metric to its series at ``step``.

        ``step=None`` uses the step after the last one logged by this object (0 at
        first). Neptune needs strictly increasing steps per series; a repeated step is
        refused by the server and reported once in the log.
        """
        check_open(self._closed, "log_metrics", _SINK)
        checked_step = check_step(step)
        checked = check_metrics(metrics)
        at = self._next_step if checked_step is None else checked_step
        self._next_step = at + 1
        operations, dropped = metric_operations(
            checked, step=at, timestamp_ms=int(time.time() * 1000)
        )
        for name in dropped:
            if name not in self._dropped:
                self._dropped.add(name)
                _log.warning(
                    "Neptune: metric %r has a non-finite value at step %d, which Neptune "
                    "float series cannot hold; such points are skipped (reported once)",
                    name,
                    at,
                )
        self._submit("metrics", operations)

    def log_long_text(self, key: str, text: str) -> None:
        """Write ``text`` to the string field ``key`` (cut to 16384 characters)."""
        check_open(self._closed, "log_long_text", _SINK)
        check_text(key, text)
        operation, cut = text_operation(key, text)
        if cut and key not in self._cut_texts:
            self._cut_texts.add(key)
            _log.warning(
                "Neptune: text %r has %d characters; Neptune string fields keep the first "
                "16384 (the full text is in the files sink, if configured)",
                key,
                len(text),
            )
        self._submit("text", [operation])

    def sync(self) -> None:
        """Wait until everything logged so far is safe in the spool on disk.

        Delivery itself goes on in the background; :meth:`close` waits for it.
        """
        if self._closed:
            return
        if not self._sender.wait_spooled(self._close_timeout):
            _log.warning(
                "Neptune: the spool did not take every row within %.0f s", self._close_timeout
            )

    def get_url(self) -> str | None:
        """``{applicationUrl}/{workspace}/{project}/e/{shortId}`` once the run exists."""
        return self._transport.url or run_url(self._sender.state)

    @property
    def delivery_error(self) -> str | None:
        """Why delivery stopped for good (a rejected token, a missing project), or ``None``."""
        return self._sender.stopped

    def close(self, exit_code: int = 0) -> None:
        """Deliver what is pending (at most ``close_timeout_s``), mark failure, stop pinging.

        A non-zero ``exit_code`` writes ``sys/failed = true``; Neptune has no other
        notion of a finished run (it goes inactive when the pings stop). Rows not
        delivered in time stay spooled and a warning names ``crucible-train logs sync``.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._sender.close(int(exit_code), self._close_timeout)
