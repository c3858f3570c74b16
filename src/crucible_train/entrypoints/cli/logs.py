"""``crucible-train logs sync RUN_DIR`` (entry-point layer): the command's glue.

Network metrics sinks (W&B, Neptune) write every row to a spool under
``RUN_DIR/spool/<kind>/`` before sending it; this command delivers what such spools
still hold, in order and exactly once, and marks each run finished with the exit code
given to ``close`` (or ``--exit-code``, default 1 "failed", when the process died before
``close``). The work is done by ``adapters/delivery/sync.py``, reached through
:func:`crucible_train.container.sync_metrics_spools` (commands never import adapters).
Secrets come from the environment (``WANDB_API_KEY``, ``NEPTUNE_API_TOKEN``); the HTTP
client is the configured ``http`` backend, or ``requests`` when the configuration says
``noop``.

Exit codes: 0 every row was delivered; 3 rows remain spooled; 2 a configuration problem
(unknown sink kind, missing secret, no HTTP client, no such directory).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from crucible_train.container import (
    BACKENDS,
    build_container,
    find_spools,
    load_config,
    sync_metrics_spools,
)
from crucible_train.entrypoints.cli._options import Commands, add_group
from crucible_train.errors import ConfigurationError

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_ROWS_LEFT", "add_logs_parser", "run_logs_sync"]

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_ROWS_LEFT = 3

_FALLBACK_HTTP = "requests"


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
    if not find_spools(directory):
        print(f"nothing to sync: no sink spool under {directory}", file=stdout)
        return EXIT_OK
    container = build_container(config_file, _http_overrides(config_file, overrides), env)
    http = container.http()
    try:
        results = sync_metrics_spools(
            directory, http=http, timeout=timeout, environ=env, exit_code_if_unknown=exit_code
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
