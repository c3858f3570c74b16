"""Parser pieces every command shares: ``--debug``, ``--config FILE`` and ``key=value``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["Commands", "Handler", "add_group", "config_options", "debug_option"]

# A string: argparse._SubParsersAction is generic for type checkers only.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The subparsers a command module adds its parser to."""

Handler: TypeAlias = Callable[[Any], int]
"""Runs a parsed command line (an ``argparse`` namespace) and returns the exit code."""


def config_options() -> argparse.ArgumentParser:
    """``--config FILE`` and the positional ``key=value`` overrides, as a parent parser."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file merged over the packaged containers.yaml (relative to this directory)",
    )
    parent.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides applied last, e.g. training.backend=noop metrics.sinks=[noop]",
    )
    return parent


def debug_option() -> argparse.ArgumentParser:
    """``--debug`` as a parent parser, accepted before and after a subcommand."""
    # SUPPRESS keeps a subcommand from resetting a --debug given before it.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks on errors",
    )
    return parent


def add_group(
    commands: Commands,
    name: str,
    *,
    summary: str,
    description: str,
    dest: str,
    debug: argparse.ArgumentParser,
) -> Commands:
    """Add the command group ``name`` and return the subparsers for its actions.

    The group remembers its own help, shown when no action was chosen below it.

    Args:
        commands: the subparsers the group is added to.
        name: the group's name on the command line.
        summary: one line for the list of commands.
        description: the group's own help text.
        dest: the namespace attribute the chosen action goes to.
        debug: the ``--debug`` parent parser.
    """
    group = commands.add_parser(name, help=summary, description=description, parents=[debug])
    group.set_defaults(show_help=group.print_help)
    return group.add_subparsers(dest=dest, metavar="ACTION")
