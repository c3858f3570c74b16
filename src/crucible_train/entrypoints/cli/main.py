"""The ``crucible-train`` command: the parser, the dispatch and the error reporting.

Each subcommand lives in its own module of this package, which adds its parser and
the handler that runs it. Subcommands:

* ``crucible-train config show [--config FILE] [key=value ...]`` prints the resolved
  configuration as YAML (secrets masked ``***``, paths absolute);
* ``crucible-train config check [--config FILE] [key=value ...]`` validates it and prints
  one ``OK`` line naming the chosen backends, then the configured model's facts (see
  :mod:`crucible_train.entrypoints.cli.config`);
* ``crucible-train logs sync RUN_DIR [--timeout S] [--exit-code N] [--config FILE]
  [key=value ...]`` delivers the rows network metrics sinks left spooled under
  ``RUN_DIR`` (see :mod:`crucible_train.entrypoints.cli.logs`);
* ``crucible-train eval --samples FILE.jsonl [--scorer NAME ...] [--generate] [--out F]
  [--resume] [--concurrency N] [--chunk-size N] [--strict] [--config FILE] [key=value ...]``
  scores a samples file (see :mod:`crucible_train.entrypoints.cli.eval`);
* ``crucible-train export RUN_DIR[:STEP] --out DIR [--merge-lora|--adapter] [--force]``
  writes a run's checkpoint as a Hugging Face model directory (see
  :mod:`crucible_train.entrypoints.cli.export`);
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
from crucible_train.entrypoints.cli._options import debug_option
from crucible_train.entrypoints.cli.config import add_config_parser
from crucible_train.entrypoints.cli.eval import add_eval_parser
from crucible_train.entrypoints.cli.export import add_export_parser
from crucible_train.entrypoints.cli.logs import add_logs_parser
from crucible_train.entrypoints.cli.render import add_render_parser
from crucible_train.entrypoints.cli.train import add_train_parser
from crucible_train.errors import CrucibleError

__all__ = ["main"]

PROG = "crucible-train"
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _build_parser() -> argparse.ArgumentParser:
    debug = debug_option()
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
    # Each adds its parser with a `handler` default that runs the parsed command line.
    for add in (
        add_config_parser,
        add_logs_parser,
        add_eval_parser,
        add_export_parser,
        add_render_parser,
        add_train_parser,
    ):
        add(commands, debug)
    return parser


def _report(error: CrucibleError, stream: TextIO) -> None:
    """One ``error:`` line per problem (a multi-line problem gives several lines)."""
    for problem in error.problems:
        for line in problem.splitlines() or [""]:
            print(f"error: {line}", file=stream)


def _run(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is None:
        # No action chosen: show what exists rather than doing nothing silently.
        args.show_help(sys.stderr)
        return EXIT_USAGE
    code: int = handler(args)
    return code


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
        return EXIT_INTERRUPTED
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
