"""The ``crucible-train`` command (entry-point layer).

Subcommands:

* ``crucible-train config show [--config FILE] [key=value ...]`` prints the resolved
  configuration as YAML (secrets masked ``***``, paths absolute);
* ``crucible-train config check [--config FILE] [key=value ...]`` validates it and prints
  one ``OK`` line naming the chosen backends;
* ``crucible-train logs sync RUN_DIR [--timeout S] [--exit-code N] [--config FILE]
  [key=value ...]`` delivers the rows network metrics sinks left spooled under
  ``RUN_DIR`` (see :mod:`crucible_train.entrypoints.cli.logs`);
* ``crucible-train eval --samples FILE.jsonl [--scorer NAME ...] [--generate] [--out F]
  [--resume] [--concurrency N] [--chunk-size N] [--strict] [--config FILE] [key=value ...]``
  scores a samples file (see :mod:`crucible_train.entrypoints.cli.eval`);
* ``crucible-train render --model NAME | --renderer NAME [--tokenizer PATH] --messages FILE
  [--mode generation|supervised] [--train-on WHAT] [--format text|json]`` shows the tokens
  (and weights) a chat renderer makes of conversations (see
  :mod:`crucible_train.entrypoints.cli.render`);
* ``crucible-train train sft|rl|dpo|distill [--config FILE] [key=value ...] [--run-dir DIR]
  [--resume] [--fresh]`` runs a training recipe into a run directory (metrics, config,
  checkpoints, plots); Ctrl-C saves a checkpoint and exits 130, ``--resume`` continues
  (see :mod:`crucible_train.entrypoints.cli.train`).

Exit codes: 0 success; 1 an unexpected error (one line, plus a hint to re-run with
``--debug`` for the traceback); 2 a usage or configuration error, reported as one
``error: ...`` line per problem on stderr; 3 (``logs sync``) rows are still spooled;
130 interrupted (Ctrl-C; ``train`` saved a resumable checkpoint).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from crucible_train import __version__
from crucible_train.container import load_config
from crucible_train.entrypoints.cli.eval import eval_options_from_args, run_eval
from crucible_train.entrypoints.cli.logs import run_logs_sync
from crucible_train.entrypoints.cli.render import (
    add_render_parser,
    render_options_from_args,
    run_render,
)
from crucible_train.entrypoints.cli.train import (
    add_train_parser,
    run_train,
    train_options_from_args,
)
from crucible_train.errors import CrucibleError

__all__ = ["main"]

PROG = "crucible-train"
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2


def _config_options() -> argparse.ArgumentParser:
    """Options shared by ``config show`` and ``config check``."""
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


def _debug_option() -> argparse.ArgumentParser:
    # SUPPRESS keeps a subcommand from resetting a --debug given before it.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks on errors",
    )
    return parent


def _add_group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    description: str,
    dest: str,
    debug: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
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


def _build_parser() -> argparse.ArgumentParser:
    debug = _debug_option()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="LLM post-training: chat rendering, SFT/RL/DPO/distillation loops, "
        "evaluation and experiment logging over swappable backends.",
        parents=[debug],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    # Each level remembers its own help, shown when no action was chosen below it.
    parser.set_defaults(show_help=parser.print_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    config_commands = _add_group(
        commands,
        "config",
        summary="inspect and validate containers.yaml",
        description="Inspect and validate the adapter configuration (containers.yaml).",
        dest="config_command",
        debug=debug,
    )
    options = _config_options()
    config_commands.add_parser(
        "show",
        help="print the resolved configuration as YAML (secrets masked)",
        description="Print the resolved configuration as YAML: packaged default, then "
        "--config FILE, then key=value overrides. Secrets are shown as ***.",
        parents=[options, debug],
    )
    config_commands.add_parser(
        "check",
        help="validate the configuration and report every problem",
        description="Validate the configuration; exit 0 with one OK line, or exit 2 "
        "listing every problem.",
        parents=[options, debug],
    )

    logs_commands = _add_group(
        commands,
        "logs",
        summary="manage experiment-tracking logs (W&B, Neptune)",
        description="Manage what network metrics sinks logged.",
        dest="logs_command",
        debug=debug,
    )
    sync = logs_commands.add_parser(
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
    _add_eval(commands, debug)
    add_render_parser(commands, debug)
    add_train_parser(commands, debug)
    return parser


def _add_eval(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    debug: argparse.ArgumentParser,
) -> None:
    """The ``eval`` subcommand; the work is done in :mod:`crucible_train.entrypoints.cli.eval`."""
    command = commands.add_parser(
        "eval",
        help="score a JSONL file of samples (optionally generating the outputs)",
        description='Score each line {"id", "input"?, "output"?, "target"} of a '
        "JSONL file, print a summary and log eval/ metrics. Exit 0 when done, 2 on bad "
        "input or configuration.",
        parents=[_config_options(), debug],
    )
    command.add_argument("--samples", required=True, metavar="FILE", help="samples JSONL file")
    command.add_argument(
        "--scorer",
        action="append",
        metavar="NAME",
        help="scorer to apply; repeat for several, the first is primary (default: exact_match)",
    )
    command.add_argument(
        "--generate",
        action="store_true",
        help="generate missing outputs with the configured llm backend",
    )
    command.add_argument("--out", metavar="FILE", help="write results to this JSONL file")
    command.add_argument(
        "--resume", action="store_true", help="skip samples already in --out (same run only)"
    )
    command.add_argument("--concurrency", type=int, default=8, metavar="N", help="default: 8")
    command.add_argument("--chunk-size", type=int, default=25, metavar="N", help="default: 25")
    command.add_argument(
        "--strict",
        action="store_true",
        help="stop with exit code 2 at the first malformed sample line",
    )


def _report(error: CrucibleError, stream: TextIO) -> None:
    """One ``error:`` line per problem (a multi-line problem gives several lines)."""
    for problem in error.problems:
        for line in problem.splitlines() or [""]:
            print(f"error: {line}", file=stream)


def _run(args: argparse.Namespace) -> int:
    if args.command == "logs" and getattr(args, "logs_command", None) == "sync":
        return run_logs_sync(
            args.run_dir,
            timeout=args.timeout,
            exit_code=args.exit_code,
            config_file=args.config,
            overrides=args.overrides,
        )
    if args.command == "eval":
        return run_eval(eval_options_from_args(args))
    if args.command == "render":
        return run_render(render_options_from_args(args))
    if args.command == "train":
        return run_train(train_options_from_args(args))
    if args.command != "config" or args.config_command is None:
        # No action chosen: show what exists rather than doing nothing silently.
        args.show_help(sys.stderr)
        return EXIT_USAGE
    resolved = load_config(args.config, args.overrides)
    if args.config_command == "show":
        sys.stdout.write(resolved.to_yaml())
    else:
        print(f"OK: configuration is valid; backends: {resolved.summary()}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crucible-train`` command.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 unexpected error, 2 usage or configuration error,
        3 rows still spooled after ``logs sync``, 4 a backend failed during ``train``
        (the run directory can be resumed), 130 interrupted.
    """
    parser = _build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            # `train sft --resume key=value`: argparse stops filling the positional
            # overrides at the first option; take key=value words after options too.
            if getattr(args, "command", None) == "train" and all(
                "=" in word and not word.startswith("-") for word in extra
            ):
                args.overrides = [*args.overrides, *extra]
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors; return, don't exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    try:
        return _run(args)
    except CrucibleError as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        _report(exc, sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
            print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            print(
                f"error: unexpected {type(exc).__name__}: {first_line} "
                f"(re-run with --debug for the traceback)",
                file=sys.stderr,
            )
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
