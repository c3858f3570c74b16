"""``crucible-train config show|check``: inspect and validate the configuration.

``config show`` prints the resolved configuration as YAML (packaged default, then
``--config FILE``, then ``key=value`` overrides; secrets ``***``, paths absolute).
``config check`` validates it and prints one ``OK`` line naming the chosen backends,
then one ``model`` line with what the ``model_info`` port says about the configured
model (see :mod:`crucible_train.entrypoints.model_facts`; a service backend is not
asked, so the check stays offline). Exit 0, or 2 listing every problem.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from crucible_train.container import ResolvedConfig, container_from_config, load_config
from crucible_train.entrypoints.cli._options import Commands, add_group, config_options
from crucible_train.entrypoints.model_facts import OFFLINE_MODEL_INFO, ask_model_info

__all__ = ["add_config_parser", "model_line", "run_config"]

EXIT_OK = 0
MODEL_INFO = "model_info"


def add_config_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
    """Add ``config show`` and ``config check`` to the command's subparsers."""
    actions = add_group(
        commands,
        "config",
        summary="inspect and validate containers.yaml",
        description="Inspect and validate the adapter configuration (containers.yaml).",
        dest="config_command",
        debug=debug,
    )
    options = config_options()
    show = actions.add_parser(
        "show",
        help="print the resolved configuration as YAML (secrets masked)",
        description="Print the resolved configuration as YAML: packaged default, then "
        "--config FILE, then key=value overrides. Secrets are shown as ***.",
        parents=[options, debug],
    )
    check = actions.add_parser(
        "check",
        help="validate the configuration and report every problem",
        description="Validate the configuration; exit 0 with one OK line, or exit 2 "
        "listing every problem.",
        parents=[options, debug],
    )
    for parser in (show, check):
        parser.set_defaults(handler=run_config)


def model_line(resolved: ResolvedConfig) -> str:
    """``model (model_info.BACKEND): ...``: the configured model's facts, or why none."""
    backend = str(resolved.backends().get(MODEL_INFO))
    where = f"model ({MODEL_INFO}.{backend})"
    if backend not in OFFLINE_MODEL_INFO:
        return f"{where}: not asked (it asks the service; config check stays offline)"
    container = container_from_config(resolved)
    try:
        return f"{where}: {ask_model_info(container.model_info).line()}"
    finally:
        container.shutdown_resources()


def run_config(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """Run ``config show`` or ``config check`` for the parsed command line ``args``.

    Raises:
        ConfigurationError: the configuration is invalid (every problem listed).
    """
    out = stdout if stdout is not None else sys.stdout
    resolved = load_config(args.config, args.overrides)
    if args.config_command == "show":
        out.write(resolved.to_yaml())
    else:
        print(f"OK: configuration is valid; backends: {resolved.summary()}", file=out)
        print(model_line(resolved), file=out)
    return EXIT_OK
