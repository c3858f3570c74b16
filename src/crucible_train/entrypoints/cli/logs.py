"""``crucible-train logs sync RUN_DIR`` (entry-point layer): deliver what sinks left spooled.

Network metrics sinks (W&B, Neptune) write every row to a spool under
``RUN_DIR/spool/<kind>/`` before sending it. When a run ends while the service is down,
or the process dies, rows stay there; this command finds every spool under ``RUN_DIR``,
sends what each holds, in order and exactly once, and marks the run finished with the
exit code given to ``close`` (or ``--exit-code``, default 1 "failed", when the process
died before ``close``).

Each spool's ``sink.json`` names its sink ``kind``; the sink class registered under that
name in :data:`crucible_train.container.BACKENDS` does the work: its ``sync_spool``
classmethod (inherited from ``adapters._delivery.SpoolingSink``), or, for a class that
only has ``resume_transport``, the ``sync_spool`` function when the container re-exports
it (this module may not import adapters itself). Secrets come from
the environment (``WANDB_API_KEY``, ``NEPTUNE_API_TOKEN``); the HTTP client is the
configured ``http`` backend, or ``requests`` when the configuration says ``noop``.

Exit codes: 0 every row was delivered; 3 rows remain spooled; 2 a configuration problem
(unknown sink kind, missing secret, no HTTP client, no such directory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from crucible_train import container as _container
from crucible_train.container import BACKENDS, build_container, load_config
from crucible_train.entrypoints.cli._options import Commands, add_group
from crucible_train.errors import ConfigurationError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_ROWS_LEFT",
    "SpoolResult",
    "add_logs_parser",
    "discover_spools",
    "run_logs_sync",
    "sync_run_dir",
]

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_ROWS_LEFT = 3

# The spool convention of crucible_train.adapters._delivery (its source of truth; a test
# checks that both find the same spools): RUN_DIR/spool/<dir>/sink.json with a "kind".
_SPOOL_DIRNAME = "spool"
_SINK_FILE = "sink.json"
_METRICS = "metrics"
_FALLBACK_HTTP = "requests"


@attrs.frozen(kw_only=True)
class SpoolResult:
    """What syncing one spool achieved.

    Attributes:
        kind: the sink kind (``"wandb"``).
        spool_dir: the spool directory.
        left: rows still spooled (``None`` when the spool could not be synced at all).
        error: why it could not be synced (a configuration problem), else ``None``.
    """

    kind: str
    spool_dir: Path
    left: int | None
    error: str | None = None


def discover_spools(run_dir: Path) -> list[tuple[str, Path]]:
    """Every sink spool under ``run_dir`` as ``(kind, spool_dir)``, sorted by directory.

    Raises:
        ConfigurationError: a ``sink.json`` is unreadable.
    """
    root = run_dir / _SPOOL_DIRNAME
    found: list[tuple[str, Path]] = []
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        info_path = child / _SINK_FILE
        if not info_path.is_file():
            continue
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{info_path} cannot be read: {exc}") from None
        kind = info.get("kind") if isinstance(info, dict) else None
        if not isinstance(kind, str):
            raise ConfigurationError(f"{info_path} does not name its sink kind")
        found.append((kind, child))
    return found


def sync_run_dir(
    run_dir: Path,
    *,
    http: Any,
    timeout: float,
    environ: Mapping[str, str],
    exit_code_if_unknown: int = 1,
    backends: Mapping[str, Any] | None = None,
) -> list[SpoolResult]:
    """Sync every spool under ``run_dir``; a spool that cannot be synced does not stop the rest.

    Args:
        run_dir: the run directory.
        http: the HTTP client (an :class:`~crucible_train.ports.http.HttpClient`).
        timeout: seconds to spend per spool at most.
        environ: where sinks read their secrets.
        exit_code_if_unknown: exit code for runs whose process died before ``close``.
        backends: sink kind → registered backend (default: ``BACKENDS["metrics"]``).

    Returns:
        One result per spool, in directory order.
    """
    registry = BACKENDS[_METRICS] if backends is None else backends
    results: list[SpoolResult] = []
    for kind, spool_dir in discover_spools(run_dir):
        sync = _syncer(registry.get(kind))
        if sync is None:
            known = ", ".join(sorted(k for k, b in registry.items() if _syncer(b) is not None))
            results.append(
                SpoolResult(
                    kind=kind,
                    spool_dir=spool_dir,
                    left=None,
                    error=f"no registered metrics sink {kind!r} can sync a spool "
                    f"(known: {known or 'none'})",
                )
            )
            continue
        try:
            left = sync(
                spool_dir,
                http=http,
                environ=environ,
                timeout=timeout,
                exit_code_if_unknown=exit_code_if_unknown,
            )
        except ConfigurationError as exc:
            results.append(SpoolResult(kind=kind, spool_dir=spool_dir, left=None, error=str(exc)))
            continue
        results.append(SpoolResult(kind=kind, spool_dir=spool_dir, left=int(left)))
    return results


def _syncer(backend: Any) -> Any:
    """The callable syncing a spool for a registered backend, or ``None``."""
    adapter = getattr(backend, "adapter", None)
    method = getattr(adapter, "sync_spool", None)
    if callable(method):
        return method
    resume = getattr(adapter, "resume_transport", None)
    generic = getattr(_container, "sync_spool", None)
    if not callable(resume) or not callable(generic):
        return None

    def sync(
        spool_dir: Path,
        *,
        http: Any,
        environ: Mapping[str, str],
        timeout: float,
        exit_code_if_unknown: int,
    ) -> int:
        transport = resume(spool_dir, http=http, environ=environ)
        return int(
            generic(
                spool_dir, transport, timeout=timeout, exit_code_if_unknown=exit_code_if_unknown
            )
        )

    return sync


def _http_overrides(config_file: str | None, overrides: Sequence[str]) -> list[str]:
    """Overrides that give the command a real HTTP client when the config says ``noop``."""
    resolved = load_config(config_file, overrides)
    if resolved.backends().get("http") != "noop":
        return list(overrides)
    if _FALLBACK_HTTP not in BACKENDS["http"]:
        raise ConfigurationError(
            "logs sync sends over HTTP, but http.backend is 'noop' and no 'requests' backend "
            "is registered; set http.backend to a real client"
        )
    return [*overrides, f"http.backend={_FALLBACK_HTTP}"]


def run_logs_sync(
    run_dir: str,
    *,
    timeout: float,
    exit_code: int | None = None,
    config_file: str | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``logs sync`` command: sync every spool under ``run_dir`` and report.

    Args:
        run_dir: the run directory.
        timeout: seconds to spend per spool at most.
        exit_code: exit code for runs whose process died before ``close`` (default 1).
        config_file: a ``containers.yaml`` overlay (for the ``http`` backend settings).
        overrides: dotted ``key=value`` overrides.
        environ: where secrets are read (default ``os.environ``).
        out: where progress lines go (default stdout).
        err: where problems go (default stderr).

    Returns:
        0 everything delivered, 3 rows remain, 2 a configuration problem.

    Raises:
        ConfigurationError: the configuration is invalid (the CLI reports it, exit 2).
    """
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err
    env = os.environ if environ is None else environ
    directory = Path(run_dir).expanduser().absolute()
    if not directory.is_dir():
        raise ConfigurationError(f"run directory {directory} does not exist")
    spools = discover_spools(directory)
    if not spools:
        print(f"nothing to sync: no sink spool under {directory}", file=stdout)
        return EXIT_OK
    container = build_container(config_file, _http_overrides(config_file, overrides), env)
    http = container.http()
    try:
        results = sync_run_dir(
            directory,
            http=http,
            timeout=timeout,
            environ=env,
            exit_code_if_unknown=1 if exit_code is None else exit_code,
        )
    finally:
        http.close()
    code = EXIT_OK
    for result in results:
        if result.error is not None:
            for line in result.error.splitlines() or [""]:
                print(f"error: {result.kind}: {line}", file=stderr)
            code = EXIT_CONFIG
        elif result.left:
            print(
                f"{result.kind}: {result.left} rows still spooled in {result.spool_dir}; "
                "run this command again when the service is reachable",
                file=stdout,
            )
            if code == EXIT_OK:
                code = EXIT_ROWS_LEFT
        else:
            print(f"{result.kind}: everything delivered ({result.spool_dir})", file=stdout)
    return code


# --- the command line ---------------------------------------------------------------------


def add_logs_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
    """Add the ``logs`` group and its ``sync`` action to the command's subparsers."""
    actions = add_group(
        commands,
        "logs",
        summary="manage experiment-tracking logs (W&B, Neptune)",
        description="Manage what network metrics sinks logged.",
        dest="logs_command",
        debug=debug,
    )
    sync = actions.add_parser(
        "sync",
        help="deliver rows a run left spooled (service down, process died)",
        description="Find every sink spool under RUN_DIR/spool/, send what it holds in "
        "order, then mark the run finished. Secrets come from the environment "
        "(WANDB_API_KEY, NEPTUNE_API_TOKEN). Exit 0 when everything was delivered, 3 when "
        "rows remain, 2 on a configuration problem.",
        parents=[debug],
    )
    # RUN_DIR comes before the overrides (the shared options put them first).
    sync.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    sync.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted configuration overrides, e.g. http.requests.default_timeout=60",
    )
    sync.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file merged over the packaged containers.yaml (for the http settings)",
    )
    sync.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds to spend per sink at most (default: 120)",
    )
    sync.add_argument(
        "--exit-code",
        type=int,
        default=None,
        metavar="N",
        help="exit code to record for a run whose process died before closing its sinks "
        "(default: 1, failed); a recorded exit code always wins",
    )
    sync.set_defaults(handler=_run_from_args)


def _run_from_args(args: argparse.Namespace) -> int:
    return run_logs_sync(
        args.run_dir,
        timeout=args.timeout,
        exit_code=args.exit_code,
        config_file=args.config,
        overrides=args.overrides,
    )
