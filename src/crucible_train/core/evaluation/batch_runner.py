"""Streaming batch evaluation: generate, score, persist and aggregate, one chunk at a time.

The three stages compose lazily, so a run over millions of samples keeps flat memory::

    config = EvalConfig(scorers=("exact_match",), generate=my_generate)
    fingerprint = run_fingerprint(config, samples_bytes)  # the samples file's content
    store = results_store("results.jsonl")  # from crucible_train.container
    done = completed_ids(store) if resume else frozenset()
    results = stream_evaluate(samples, config, skip_ids=done)
    persisted = persist_results(results, store, run_fingerprint=fingerprint, resume=resume)
    metrics = aggregate_metrics(persisted, threshold=config.threshold)

The batch runner does no file I/O: results go through the
:class:`~crucible_train.ports.results_store.ResultsStore` port (its files adapter keeps the
JSONL format and the crash safety), and the caller reads the samples' bytes for the
fingerprint.

Failure policy (the upstream runner silently dropped failing chunks; this one never
drops anything): every input sample yields exactly one :class:`EvalResult`, in input
order. A sample whose generation or scoring raises, that has no ``id``, or that lacks the
target a scorer needs, yields a result with ``error`` set to ``"TypeName: message"``; the
run continues and :func:`aggregate_metrics` counts it under ``errors``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs

from crucible_train.core.evaluation.samples import EvalResult, EvalSample
from crucible_train.core.scoring import Scorer, get_scorer
from crucible_train.core.scoring import score as score_one
from crucible_train.core.scoring import score_batch as score_many
from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.results_store import RESULTS_FORMAT_VERSION, ResultsStore

__all__ = [
    "RESULTS_FORMAT_VERSION",
    "EvalConfig",
    "EvalResult",
    "EvalSample",
    "aggregate_metrics",
    "completed_ids",
    "persist_results",
    "read_results",
    "run_fingerprint",
    "stream_evaluate",
]

_Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def _scorer_tuple(values: Iterable[str | Scorer]) -> tuple[str | Scorer, ...]:
    out = tuple(values)
    if isinstance(values, str):  # a bare "exact_match" would otherwise become 11 letters
        out = (values,)
    if not out:
        raise ConfigurationError("EvalConfig.scorers is empty; name at least one scorer")
    return out


@attrs.frozen(kw_only=True)
class EvalConfig:
    """What to evaluate with.

    Attributes:
        scorers: scorer names (looked up with ``core.scoring.get_scorer``) or scorer
            objects; the first is the primary scorer for ``correct``/``mean_score``.
        scorer_options: keyword options per scorer name, passed to ``score_batch``.
        generate: produces a sample's output when the sample has none (built by the
            caller from an LLMClient or a SamplingClient); must be thread-safe.
        threshold: a sample is *correct* when its primary score is ``>= threshold``
            (1.0 suits 0/1 scorers; lower it for graded scorers such as similarity).
        strict: raise the first sample error instead of yielding an error result.
    """

    scorers: tuple[str | Scorer, ...] = attrs.field(converter=_scorer_tuple)
    scorer_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, hash=False)
    generate: Callable[[EvalSample], str] | None = attrs.field(default=None, eq=False)
    threshold: float = 1.0
    strict: bool = False

    def scorer_names(self) -> tuple[str, ...]:
        """The scorer names in order (objects contribute their ``name``)."""
        return tuple(s if isinstance(s, str) else s.name for s in self.scorers)


# --- stream_evaluate ----------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@attrs.define
class _Item:
    """Mutable per-sample working state while its chunk is in flight."""

    index: int
    sample: EvalSample | None
    result_id: str
    output: str | None = None
    scores: dict[str, float] = attrs.Factory(dict)
    errors: list[str] = attrs.Factory(list)
    exception: BaseException | None = None
    future: Future[str] | None = None

    def fail(self, exc: BaseException, context: str = "") -> None:
        self.errors.append(f"{context}{_describe(exc)}")
        if self.exception is None:
            self.exception = exc

    def result(self) -> EvalResult:
        sample = self.sample
        return EvalResult(
            id=self.result_id,
            input=sample.input if sample else None,
            output=self.output,
            target=sample.target if sample else None,
            scores=self.scores,
            error="; ".join(self.errors) if self.errors else None,
        )


def _resolve_scorers(config: EvalConfig) -> list[Scorer]:
    resolved: list[Scorer] = []
    for entry in config.scorers:
        scorer = get_scorer(entry) if isinstance(entry, str) else entry
        if not isinstance(getattr(scorer, "name", None), str) or not callable(
            getattr(scorer, "score", None)
        ):
            raise ConfigurationError(
                f"scorer {entry!r} has no name or score(); "
                "pass a scorer name or an object implementing the Scorer protocol"
            )
        resolved.append(scorer)
    names = [s.name for s in resolved]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"EvalConfig.scorers names a scorer twice: {names}")
    return resolved


def _to_item(index: int, raw: EvalSample | Mapping[str, Any]) -> _Item:
    if isinstance(raw, EvalSample):
        return _Item(index=index, sample=raw, result_id=raw.id, output=raw.output)
    try:
        if not isinstance(raw, Mapping):
            raise InvalidDataError(
                f"sample is a {type(raw).__name__}; expected EvalSample or a mapping"
            )
        sample = EvalSample.from_mapping(raw)
    except InvalidDataError as exc:
        # No usable id: name the sample by its 0-based position in the input stream.
        item = _Item(index=index, sample=None, result_id=f"<index {index}>")
        item.fail(exc)
        return item
    return _Item(index=index, sample=sample, result_id=sample.id, output=sample.output)


def _chunks(
    samples: Iterable[EvalSample | Mapping[str, Any]], size: int, skip: frozenset[str]
) -> Iterator[list[_Item]]:
    chunk: list[_Item] = []
    for index, raw in enumerate(samples):
        item = _to_item(index, raw)
        if item.sample is not None and item.result_id in skip:
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _score_chunk(items: list[_Item], scorers: list[Scorer], config: EvalConfig) -> None:
    for scorer in scorers:
        opts = dict(config.scorer_options.get(scorer.name, {}))
        eligible: list[_Item] = []
        for item in items:
            # A failure of another scorer does not stop this one; no output does.
            if item.sample is None or item.output is None:
                continue
            if getattr(scorer, "needs_target", True) and item.sample.target is None:
                item.fail(
                    InvalidDataError(f"scorer {scorer.name!r} needs a target; sample has none")
                )
                continue
            eligible.append(item)
        if not eligible:
            continue
        outputs = [item.output or "" for item in eligible]
        # Scorers that ignore the target still get a str so their signature stays simple.
        targets = [(item.sample.target if item.sample else None) or "" for item in eligible]
        try:
            # core.scoring checks the contract (count, floats in [0, 1]) for us.
            values = score_many(scorer, outputs, targets, **opts)
            pairs = list(zip(eligible, values, strict=True))
        except Exception:
            # One bad sample must not sink its chunk: fall back to scoring one by one so
            # only the samples that really fail get an error.
            pairs = []
            for item, output, target in zip(eligible, outputs, targets, strict=True):
                try:
                    pairs.append((item, score_one(scorer, output, target, **opts)))
                except Exception as exc:
                    item.fail(exc, f"scorer {scorer.name!r}: ")
        for item, value in pairs:
            item.scores[scorer.name] = value


def stream_evaluate(
    samples: Iterable[EvalSample | Mapping[str, Any]],
    config: EvalConfig,
    *,
    chunk_size: int = 25,
    concurrency: int = 8,
    skip_ids: Iterable[str] = (),
) -> Iterator[EvalResult]:
    """Evaluate samples lazily, yielding one result per sample in input order.

    Input is read chunk by chunk. Generation (for samples without ``output`` when
    ``config.generate`` is set) runs on a pool of ``concurrency`` threads while at most
    ``max(2, ceil(concurrency / chunk_size) + 1)`` chunks are in flight, so generation of
    the next chunk overlaps scoring of the current one and memory stays flat. Each scorer
    scores a whole chunk with one ``score_batch`` call.

    Mappings are converted with :meth:`EvalSample.from_mapping`; one without a usable
    ``id`` yields an error result whose id is ``"<index N>"`` (N = 0-based position in
    ``samples``).

    Args:
        samples: the samples (any iterable; a generator is never read ahead of need).
        config: scorers, generation function and options.
        chunk_size: samples per chunk (per ``score_batch`` call).
        concurrency: generation threads.
        skip_ids: ids already evaluated (see :func:`completed_ids`); no result for them.

    Returns:
        An iterator of results. Scorers are resolved and arguments checked at call time.

    Raises:
        ConfigurationError: unknown scorer, or a non-positive ``chunk_size``/``concurrency``.
    """
    if chunk_size < 1 or concurrency < 1:
        raise ConfigurationError(
            f"chunk_size ({chunk_size}) and concurrency ({concurrency}) must be >= 1"
        )
    scorers = _resolve_scorers(config)
    window = max(2, -(-concurrency // chunk_size) + 1)
    return _evaluate(samples, config, scorers, chunk_size, concurrency, window, skip_ids)


def _evaluate(
    samples: Iterable[EvalSample | Mapping[str, Any]],
    config: EvalConfig,
    scorers: list[Scorer],
    chunk_size: int,
    concurrency: int,
    window: int,
    skip_ids: Iterable[str],
) -> Iterator[EvalResult]:
    generate = config.generate
    in_flight: deque[list[_Item]] = deque()
    executor = ThreadPoolExecutor(concurrency, thread_name_prefix="crucible-eval")
    try:
        for chunk in _chunks(samples, chunk_size, frozenset(skip_ids)):
            for item in chunk:
                if item.output is None and item.sample is not None and not item.errors:
                    if generate is None:
                        item.fail(
                            InvalidDataError(
                                "sample has no output and EvalConfig.generate is not set"
                            )
                        )
                    else:
                        item.future = executor.submit(generate, item.sample)
            in_flight.append(chunk)
            if len(in_flight) >= window:
                yield from _finish(in_flight.popleft(), scorers, config)
        while in_flight:
            yield from _finish(in_flight.popleft(), scorers, config)
    finally:
        # Closing the iterator early must not leave queued generation running.
        executor.shutdown(wait=True, cancel_futures=True)


def _finish(items: list[_Item], scorers: list[Scorer], config: EvalConfig) -> Iterator[EvalResult]:
    for item in items:
        if item.future is None:
            continue
        try:
            text = item.future.result()
            if not isinstance(text, str):
                raise InvalidDataError(f"generate returned a {type(text).__name__}, not text")
            item.output = text
        except Exception as exc:
            item.fail(exc, "generate: ")
        item.future = None
    _score_chunk(items, scorers, config)
    for item in items:
        if config.strict and item.exception is not None:
            raise item.exception
        yield item.result()


# --- persistence ------------------------------------------------------------------------


def run_fingerprint(
    config: EvalConfig, samples_content: bytes | Iterable[bytes], *, extra: Any = None
) -> str:
    """A stable hash identifying a run, for safe ``--resume``.

    Covers the scorer names and options, the threshold, the *content* of the samples
    (so renaming or moving their file keeps the fingerprint, editing it changes it) and
    ``extra`` (JSON-serialisable; callers put the model and generation settings there,
    since ``generate`` itself cannot be hashed).

    Args:
        config: the evaluation's scorers, options and threshold.
        samples_content: the bytes of the samples file, whole or as successive blocks
            (a generator of blocks keeps memory flat for a large file).
        extra: anything else that decides the results.

    Raises:
        ConfigurationError: ``samples_content`` is a path or text instead of bytes.
    """
    if isinstance(samples_content, (str, os.PathLike)):
        raise ConfigurationError(
            f"run_fingerprint takes the samples' content as bytes, not the path "
            f"{os.fspath(samples_content)!r}; pass the file's bytes (or blocks of them)"
        )
    digest = hashlib.sha256()
    described = {
        "scorers": list(config.scorer_names()),
        "scorer_options": {k: dict(v) for k, v in config.scorer_options.items()},
        "threshold": config.threshold,
        "extra": extra,
    }
    digest.update(json.dumps(described, sort_keys=True, default=repr).encode())
    blocks = (samples_content,) if isinstance(samples_content, bytes) else samples_content
    for block in blocks:
        if not isinstance(block, bytes):
            raise ConfigurationError(
                f"run_fingerprint got a {type(block).__name__} block of samples content; pass bytes"
            )
        digest.update(block)
    return digest.hexdigest()[:32]


def _check_store(store: object, caller: str) -> ResultsStore:
    # A path was the argument before results went through the port: say what to pass now.
    if not isinstance(store, ResultsStore):
        raise ConfigurationError(
            f"{caller} takes a ResultsStore, not a {type(store).__name__}; build one for a "
            "file with crucible_train.container.results_store(path)"
        )
    return store


def persist_results(
    results: Iterable[EvalResult],
    store: ResultsStore,
    *,
    run_fingerprint: str,
    resume: bool = False,
    overwrite: bool = False,
    chunk_size: int = 25,
) -> Iterator[EvalResult]:
    """Append results to a results store and pass them through.

    The store's log is headed by ``run_fingerprint``. Results are appended one chunk at a
    time (each append durable, see :class:`~crucible_train.ports.ResultsStore`) and
    yielded after they are stored; a crash can only leave a torn last record, which the
    next ``resume`` removes. Closing the returned iterator early stores the results
    already received.

    Args:
        results: results to store, typically from :func:`stream_evaluate`.
        store: where they go (``crucible_train.container.results_store(path)`` for a
            JSONL file).
        run_fingerprint: from :func:`run_fingerprint`; stored in the log's header.
        resume: continue the stored log (its header must carry the same fingerprint).
        overwrite: replace a stored log when not resuming.
        chunk_size: results per append.

    Raises:
        ConfigurationError (when called): the store holds a log and neither ``resume``
            nor ``overwrite`` is set, or ``resume`` finds a different fingerprint.
    """
    if chunk_size < 1:
        raise ConfigurationError(f"chunk_size is {chunk_size}; it must be >= 1")
    checked = _check_store(store, "persist_results")
    checked.open_run(run_fingerprint, resume=resume, overwrite=overwrite)
    return _persist(results, checked, chunk_size)


def _append(store: ResultsStore, results: list[EvalResult]) -> None:
    store.append([result.to_dict() for result in results])


def _persist(
    results: Iterable[EvalResult], store: ResultsStore, chunk_size: int
) -> Iterator[EvalResult]:
    buffer: list[EvalResult] = []
    try:
        for result in results:
            buffer.append(result)
            if len(buffer) >= chunk_size:
                # Clear the buffer before yielding so an early close cannot store it twice.
                written, buffer = buffer, []
                _append(store, written)
                yield from written
        if buffer:
            written, buffer = buffer, []
            _append(store, written)
            yield from written
    finally:
        if buffer:  # interrupted mid-chunk: keep what was computed
            _append(store, buffer)


def read_results(store: ResultsStore) -> Iterator[EvalResult]:
    """Stream the results stored by :func:`persist_results` (none for an empty store).

    A torn last record is skipped; the store is not changed.

    Raises:
        InvalidDataError: a stored record is not a result.
    """
    checked = _check_store(store, "read_results")
    return (EvalResult.from_json(record) for record in checked.records())


def completed_ids(store: ResultsStore) -> frozenset[str]:
    """Ids with a result in ``store`` (errors included); empty for an empty store.

    Pass it as ``stream_evaluate(..., skip_ids=...)`` when resuming.
    """
    return frozenset(result.id for result in read_results(store))


# --- aggregation ----------------------------------------------------------------------------


@attrs.define
class _Welford:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    @property
    def std(self) -> float:
        # Sample (n - 1) standard deviation; 0.0 below two values so nothing is NaN.
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


def aggregate_metrics(results: Iterable[EvalResult], *, threshold: float = 1.0) -> dict[str, Any]:
    """Summarise results in one pass with O(number of scorers) memory.

    Only results without ``error`` are *scored*. The primary scorer is the first scorer
    of the first scored result. ``ci95_low``/``ci95_high`` use the normal approximation
    ``mean ± 1.96 · std / sqrt(n)`` (fine for n of a few dozen and up; with n < 2 both
    equal the mean). Empty input gives zeros, never NaN.

    Returns:
        ``total``, ``errors``, ``scored``, ``correct`` (primary score ``>= threshold``),
        ``accuracy`` (correct / scored), ``primary_scorer``, ``mean_score``, ``std``,
        ``ci95_low``, ``ci95_high`` and ``per_scorer: {name: {mean, std, n}}``.
    """
    total = errors = correct = 0
    primary: str | None = None
    per_scorer: dict[str, _Welford] = {}
    for result in results:
        total += 1
        if result.error is not None:
            errors += 1
            continue
        if primary is None and result.scores:
            primary = next(iter(result.scores))
        for name, value in result.scores.items():
            per_scorer.setdefault(name, _Welford()).add(value)
        if primary is not None and result.scores.get(primary, -math.inf) >= threshold:
            correct += 1
    scored = total - errors
    main = per_scorer.get(primary, _Welford()) if primary is not None else _Welford()
    half_width = _Z95 * main.std / math.sqrt(main.n) if main.n > 1 else 0.0
    return {
        "total": total,
        "errors": errors,
        "scored": scored,
        "correct": correct,
        "accuracy": correct / scored if scored else 0.0,
        "primary_scorer": primary,
        "mean_score": main.mean,
        "std": main.std,
        "ci95_low": main.mean - half_width,
        "ci95_high": main.mean + half_width,
        "per_scorer": {
            name: {"mean": acc.mean, "std": acc.std, "n": acc.n} for name, acc in per_scorer.items()
        },
    }
