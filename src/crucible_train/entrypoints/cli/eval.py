"""``crucible-train eval --samples FILE.jsonl`` (entry-point layer): score a JSONL file.

Each line of the samples file is a JSON object ``{"id", "input"?, "output"?, "target"}``.
Lines are read lazily, one at a time, and streamed through
:func:`~crucible_train.core.evaluation.stream_evaluate`:

* a sample without ``output`` is answered by the configured ``llm`` port when
  ``--generate`` is given (``llm.backend`` must then be set, e.g. ``openai_compat``);
* each ``--scorer`` scores it (default ``exact_match``); ``semantic_similarity`` is built
  on the configured ``embedding`` port;
* a malformed line (not JSON, not an object, no usable ``id``) is reported with its line
  number and counted as an error result whose id is ``<line N>``; ``--strict`` stops the
  run with exit code 2 instead;
* ``--out`` appends results to a JSONL file headed by a run fingerprint (samples file
  content, scorers, generation settings), through the results store that
  :func:`crucible_train.container.results_store` builds; ``--resume`` skips ids already
  there and refuses a file written by a different run.

A progress bar with ETA goes to stderr, a summary table to stdout, and the aggregate
metrics (prefixed ``eval/``) to the configured metrics sinks.

Exit codes: 0 done (even when some samples failed: they are counted); 2 bad input or
configuration; 1 unexpected error (reported by :mod:`crucible_train.entrypoints.cli.main`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from crucible_train.container import (
    ResolvedConfig,
    container_from_config,
    load_config,
    results_store,
)
from crucible_train.core.evaluation import (
    EvalConfig,
    EvalResult,
    EvalSample,
    aggregate_metrics,
    completed_ids,
    persist_results,
    read_results,
    run_fingerprint,
    stream_evaluate,
)
from crucible_train.core.scoring import SemanticSimilarityScorer, get_scorer
from crucible_train.entrypoints.cli._options import Commands, config_options
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.llm import LLMClient
from crucible_train.ports.metrics import MetricValue

__all__ = [
    "DEFAULT_SCORER",
    "EvalOptions",
    "add_eval_parser",
    "eval_options_from_args",
    "run_eval",
]

DEFAULT_SCORER = "exact_match"
_SEMANTIC = "semantic_similarity"
_NOOP = "noop"


@attrs.frozen(kw_only=True)
class EvalOptions:
    """The ``eval`` command's options (see ``crucible-train eval --help``)."""

    samples: str
    scorers: tuple[str, ...] = (DEFAULT_SCORER,)
    generate: bool = False
    out: str | None = None
    resume: bool = False
    concurrency: int = 8
    chunk_size: int = 25
    strict: bool = False
    config_file: str | None = None
    overrides: tuple[str, ...] = ()


def add_eval_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
    """Add the ``eval`` subcommand to the command's subparsers."""
    command = commands.add_parser(
        "eval",
        help="score a JSONL file of samples (optionally generating the outputs)",
        description='Score each line {"id", "input"?, "output"?, "target"} of a '
        "JSONL file, print a summary and log eval/ metrics. Exit 0 when done, 2 on bad "
        "input or configuration.",
        parents=[config_options(), debug],
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
    command.set_defaults(handler=_run_from_args)


def _run_from_args(args: argparse.Namespace) -> int:
    return run_eval(eval_options_from_args(args))


class _SampleReader:
    """Reads the samples file lazily and remembers which positions were malformed.

    Every non-blank line yields one item, so the runner's ``<index N>`` ids map back to
    line numbers. A malformed line yields an empty mapping, which the runner turns into
    an error result; :meth:`fix` then gives it the line number and the real reason.
    """

    def __init__(self, path: Path, *, strict: bool, report: Callable[[str], None]) -> None:
        self._path = path
        self._strict = strict
        self._report = report
        self.malformed: dict[int, tuple[int, str]] = {}  # index → (line number, reason)

    def __iter__(self) -> Iterator[EvalSample | Mapping[str, Any]]:
        index = 0
        with open(self._path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw.decode("utf-8"))
                    if not isinstance(data, dict):
                        raise InvalidDataError(f"expected a JSON object, got {type(data).__name__}")
                    sample: EvalSample | Mapping[str, Any] = EvalSample.from_mapping(data)
                except (ValueError, InvalidDataError) as exc:  # JSON and UTF-8 errors too
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if self._strict:
                        raise InvalidDataError(
                            f"{self._path}:{number}: malformed sample line: {reason} "
                            "(stopped by --strict)"
                        ) from None
                    self.malformed[index] = (number, reason)
                    self._report(
                        f"warning: {self._path}:{number}: malformed sample line "
                        f"counted as an error: {reason}"
                    )
                    sample = {}
                yield sample
                index += 1

    def fix(self, result: EvalResult) -> EvalResult:
        """Rename the runner's ``<index N>`` result of a malformed line to ``<line L>``."""
        if not (result.id.startswith("<index ") and result.id.endswith(">")):
            return result
        index = int(result.id[len("<index ") : -1])
        if index not in self.malformed:
            return result
        number, reason = self.malformed.pop(index)
        return EvalResult(id=f"<line {number}>", error=f"malformed sample line {number}: {reason}")


def _blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes, 1 MiB at a time (for the run fingerprint, in flat memory)."""
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


def _count_lines(path: Path) -> int:
    """Non-blank lines, counted by a cheap byte scan (no JSON parsing)."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _check_options(options: EvalOptions) -> Path:
    problems: list[str] = []
    path = Path(options.samples)
    if not path.is_file():
        problems.append(f"samples file {path.resolve()} does not exist or is not a file")
    if options.concurrency < 1:
        problems.append(f"--concurrency is {options.concurrency}; use 1 or more")
    if options.chunk_size < 1:
        problems.append(f"--chunk-size is {options.chunk_size}; use 1 or more")
    if options.resume and options.out is None:
        problems.append("--resume needs --out (the results file to continue)")
    if problems:
        raise ConfigurationError(*problems)
    return path


def _scorers(
    options: EvalOptions, resolved: ResolvedConfig, embedding: Any
) -> tuple[str | SemanticSimilarityScorer, ...]:
    names = options.scorers or (DEFAULT_SCORER,)
    out: list[str | SemanticSimilarityScorer] = []
    for name in names:
        if name == _SEMANTIC:
            if resolved.backends().get("embedding") == _NOOP:
                raise ConfigurationError(
                    "--scorer semantic_similarity needs an embedding model: set "
                    "embedding.backend=sentence_transformers (extra 'embeddings')"
                )
            # A scorer object, not an opt: opts go into the run fingerprint by repr.
            out.append(SemanticSimilarityScorer(embedding()))
        else:
            get_scorer(name)  # unknown names fail now, listing the registered scorers
            out.append(name)
    return tuple(out)


def _generator(llm: LLMClient) -> Any:
    def generate(sample: EvalSample) -> str:
        if sample.input is None:
            raise InvalidDataError("sample has neither output nor input to generate from")
        return llm.chat([{"role": "user", "content": sample.input}]).text

    return generate


def _flat_metrics(summary: Mapping[str, Any]) -> dict[str, MetricValue]:
    flat: dict[str, MetricValue] = {}
    for key, value in summary.items():
        if key == "per_scorer":
            for scorer, stats in value.items():
                for stat, number in stats.items():
                    flat[f"eval/{scorer}/{stat}"] = number
        elif value is not None:
            flat[f"eval/{key}"] = value
    return flat


def _summary_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="evaluation summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("total", str(summary["total"]))
    table.add_row("errors", str(summary["errors"]))
    table.add_row("correct", f"{summary['correct']} / {summary['scored']}")
    table.add_row("mean", f"{summary['mean_score']:.4f}")
    table.add_row("std", f"{summary['std']:.4f}")
    table.add_row("95% CI", f"[{summary['ci95_low']:.4f}, {summary['ci95_high']:.4f}]")
    for name, stats in summary["per_scorer"].items():
        table.add_row(f"mean {name}", f"{stats['mean']:.4f} (n={stats['n']})")
    return table


def run_eval(
    options: EvalOptions, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run ``crucible-train eval``.

    Args:
        options: the parsed command-line options.
        stdout: where the summary table goes (default ``sys.stdout``).
        stderr: where progress and warnings go (default ``sys.stderr``).

    Returns:
        0 when every sample was processed (failed samples are counted, not fatal).

    Raises:
        ConfigurationError: bad options or configuration, ``--generate`` without an LLM
            backend, ``--resume`` onto a different run's results (exit 2 in the CLI).
        InvalidDataError: a malformed line under ``--strict`` (exit 2 in the CLI).
    """
    out_stream = stdout if stdout is not None else sys.stdout
    err_stream = stderr if stderr is not None else sys.stderr
    path = _check_options(options)
    resolved = load_config(options.config_file, options.overrides)
    if options.generate and resolved.backends().get("llm") == _NOOP:
        raise ConfigurationError(
            "--generate needs an LLM: set llm.backend=openai_compat and "
            "llm.openai_compat.model=NAME (in --config or as key=value overrides)"
        )
    container = container_from_config(resolved)
    try:
        scorers = _scorers(options, resolved, container.embedding)
        config = EvalConfig(
            scorers=scorers,
            generate=_generator(container.llm()) if options.generate else None,
        )
        # The model's settings decide the outputs, so they are part of the run identity.
        extra = {"generate": options.generate}
        if options.generate:
            extra["llm"] = resolved.as_dict()["llm"]
        fingerprint = run_fingerprint(config, _blocks(path), extra=extra)
        total = _count_lines(path)
        console = Console(file=err_stream)
        # Through the console, so warnings print above a live progress bar, not into it.
        reader = _SampleReader(
            path,
            strict=options.strict,
            report=lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True),
        )
        done: set[str] = set()

        def lazily() -> Iterator[EvalResult]:
            # Starts on first use: after persist_results has checked the fingerprint and
            # `done` holds the ids to skip.
            stream = stream_evaluate(
                reader,
                config,
                chunk_size=options.chunk_size,
                concurrency=options.concurrency,
                skip_ids=frozenset(done),
            )
            for result in stream:
                yield reader.fix(result)

        results: Iterator[EvalResult] = lazily()
        store = results_store(options.out) if options.out is not None else None
        if store is not None:
            results = persist_results(
                results, store, run_fingerprint=fingerprint, resume=options.resume
            )
            if options.resume:
                done.update(completed_ids(store))
        metrics = container.metrics_resource()
        progress = Progress(
            TextColumn("eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("eval", total=total, completed=min(len(done), total))

            def tracked() -> Iterator[EvalResult]:
                for result in results:
                    progress.advance(task)
                    yield result

            if store is None:
                summary = aggregate_metrics(tracked())
            else:
                for _ in tracked():
                    pass
                # The store holds earlier runs' results too when resuming: summarise all.
                summary = aggregate_metrics(read_results(store))
        metrics.log_metrics(_flat_metrics(summary), step=0)
        Console(file=out_stream).print(_summary_table(summary))
        if options.out is not None:
            print(f"results: {os.path.abspath(options.out)}", file=out_stream)
        return 0
    finally:
        container.shutdown_resources()


def eval_options_from_args(args: Any) -> EvalOptions:
    """Build :class:`EvalOptions` from the ``argparse`` namespace of ``crucible-train eval``."""
    scorers: Sequence[str] = args.scorer or (DEFAULT_SCORER,)
    return EvalOptions(
        samples=args.samples,
        scorers=tuple(scorers),
        generate=args.generate,
        out=args.out,
        resume=args.resume,
        concurrency=args.concurrency,
        chunk_size=args.chunk_size,
        strict=args.strict,
        config_file=args.config,
        overrides=tuple(args.overrides),
    )
