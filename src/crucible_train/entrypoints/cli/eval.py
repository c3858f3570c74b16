"""``crucible-train eval --samples FILE.jsonl`` (entry-point layer): score a JSONL file.

Each line of the samples file is a JSON object ``{"id", "input"?, "output"?, "target"}``.
Lines are read lazily, one at a time, and streamed through
:func:`~crucible_train.core.evaluation.stream_evaluate`:

* ``input`` is a string (one user message) or a list of chat messages;
* a sample without ``output`` is answered by the configured ``llm`` port when
  ``--generate`` is given (``llm.backend`` must then be set, e.g. ``openai_compat``), or by
  a trained model: ``--model RUN_DIR[:STEP]`` (a run's checkpoint, sampled with the run's
  backend, tokenizer and renderer) or ``--model-path DIR`` (a Hugging Face model
  directory); see :mod:`crucible_train.entrypoints.eval_models`. A model is sampled
  greedily unless ``--temperature`` says otherwise; ``--num-samples K`` answers each input
  K times (ids ``<id>#0`` ... ``<id>#K-1``, all scored, so the mean is their average);
* each ``--scorer`` scores it (default ``exact_match``); ``semantic_similarity`` is built
  on the configured ``embedding`` port;
* a malformed line (not JSON, not an object, no usable ``id``) is reported with its line
  number and counted as an error result whose id is ``<line N>``; ``--strict`` stops the
  run with exit code 2 instead;
* ``--out`` appends results to a JSONL file headed by a run fingerprint (samples file
  content, scorers, the model and its sampling settings), through the results store that
  :func:`crucible_train.container.results_store` builds; ``--resume`` skips ids already
  there and refuses a file written by a different run.

A progress bar with ETA goes to stderr, a summary table to stdout, and the aggregate
metrics (prefixed ``eval/``) to the configured metrics sinks.

Exit codes: 0 done (even when some samples failed: they are counted); 2 bad input or
configuration; 1 unexpected error (reported by :mod:`crucible_train.entrypoints.cli.main`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
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
    aggregate_metrics,
    completed_ids,
    persist_results,
    read_results,
    run_fingerprint,
    stream_evaluate,
)
from crucible_train.core.scoring import SemanticSimilarityScorer, get_scorer
from crucible_train.entrypoints.cli._options import Commands, config_options
from crucible_train.entrypoints.cli.eval_samples import SampleReader, count_lines, file_blocks
from crucible_train.entrypoints.eval_generation import (
    SamplingOptions,
    add_sampling_arguments,
    build_generator,
    sampling_options_from_args,
)
from crucible_train.entrypoints.eval_models import choose_model
from crucible_train.entrypoints.planning import as_overrides
from crucible_train.errors import ConfigurationError
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
    model: str | None = None
    model_path: str | None = None
    renderer: str | None = None
    sampling: SamplingOptions = attrs.field(factory=SamplingOptions)
    config_file: str | None = None
    overrides: tuple[str, ...] = ()


def add_eval_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
    """Add the ``eval`` subcommand to the command's subparsers."""
    command = commands.add_parser(
        "eval",
        help="score a JSONL file of samples (optionally generating the outputs)",
        description='Score each line {"id", "input"?, "output"?, "target"} of a '
        "JSONL file (input: a string or a list of chat messages), generating missing "
        "outputs with --generate, --model or --model-path; print a summary and log eval/ "
        "metrics. Exit 0 when done, 2 on bad input or configuration.",
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
        help="generate missing outputs with the configured llm backend (implied by "
        "--model and --model-path, which generate with that model instead)",
    )
    which = command.add_mutually_exclusive_group()
    which.add_argument(
        "--model",
        metavar="RUN_DIR[:STEP]",
        help="generate with a training run's checkpoint: its final one, or the one at STEP "
        "(a step, a checkpoint name, or 'start': the checkpoint the run started from), "
        "sampled with the run's own backend, tokenizer and renderer; llm.backend must stay noop",
    )
    which.add_argument(
        "--model-path",
        metavar="DIR",
        help="generate with a local Hugging Face model directory (local_torch sampler, the "
        "configured tokenizer and renderer); llm.backend must stay noop",
    )
    command.add_argument(
        "--renderer",
        metavar="NAME",
        help="chat format of the --model-path model (default: train.renderer)",
    )
    add_sampling_arguments(command)
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
    if options.sampling.num_samples < 1:
        problems.append(f"--num-samples is {options.sampling.num_samples}; use 1 or more")
    if options.renderer is not None and options.model_path is None:
        problems.append(
            "--renderer applies to --model-path only (--model uses the run's own renderer)"
        )
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
            backend, ``--model``/``--model-path`` naming no usable model or combined with
            an ``llm`` backend, ``--resume`` onto a different run's results (exit 2 in
            the CLI).
        InvalidDataError: a malformed line under ``--strict``, a sampling option out of
            range (exit 2 in the CLI).
    """
    out_stream = stdout if stdout is not None else sys.stdout
    err_stream = stderr if stderr is not None else sys.stderr
    path = _check_options(options)
    model = choose_model(
        model=options.model, model_path=options.model_path, renderer=options.renderer
    )
    # The model's settings sit under the user's own overrides, which still win.
    updates = as_overrides(model.updates) if model is not None else []
    resolved = load_config(options.config_file, [*updates, *options.overrides])
    generate = options.generate or model is not None
    llm_backend = resolved.backends().get("llm")
    if model is not None and llm_backend != _NOOP:
        raise ConfigurationError(
            f"--model/--model-path generate with that model, but llm.backend is "
            f"{llm_backend!r}: drop one of the two (llm.backend=noop keeps the model)"
        )
    if generate and model is None and llm_backend == _NOOP:
        raise ConfigurationError(
            "--generate needs an LLM: set llm.backend=openai_compat and "
            "llm.openai_compat.model=NAME (in --config or as key=value overrides), "
            "or generate with a trained model: --model RUN_DIR or --model-path DIR"
        )
    container = container_from_config(resolved)
    try:
        scorers = _scorers(options, resolved, container.embedding)
        # The model's settings decide the outputs, so they are part of the run identity.
        extra: dict[str, Any] = {"generate": generate}
        answer = None
        if generate:
            answer, settings = build_generator(resolved, container, model, options.sampling)
            extra.update(settings)
        if model is not None:
            print(f"eval: generating with {model.label}", file=err_stream)
        config = EvalConfig(scorers=scorers, generate=answer)
        fingerprint = run_fingerprint(config, file_blocks(path), extra=extra)
        total = count_lines(path) * (options.sampling.num_samples if generate else 1)
        console = Console(file=err_stream)
        # Through the console, so warnings print above a live progress bar, not into it.
        reader = SampleReader(
            path,
            strict=options.strict,
            report=lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True),
            num_samples=options.sampling.num_samples if generate else 1,
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
            # The total was estimated (a malformed line is one result, not --num-samples).
            progress.update(task, total=progress.tasks[0].completed)
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
        model=args.model,
        model_path=args.model_path,
        renderer=args.renderer,
        sampling=sampling_options_from_args(args),
        config_file=args.config,
        overrides=tuple(args.overrides),
    )
