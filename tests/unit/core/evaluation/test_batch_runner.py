"""BatchRunner: order, laziness, failure accounting, persistence/resume and aggregate math."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crucible_train.adapters.files.results_store import FilesResultsStore
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
from crucible_train.errors import ConfigurationError


class EqualScorer:
    """1.0 when output == target; records batch sizes; can fail on chosen outputs."""

    name = "equal"
    needs_target = True

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.batches: list[int] = []

    def score(self, output: str, target: str, **opts: Any) -> float:
        if output == self.fail_on:
            raise ValueError(f"cannot score {output!r}")
        return 1.0 if output == target else 0.0

    def score_batch(
        self, outputs: Sequence[str], targets: Sequence[str], **opts: Any
    ) -> list[float]:
        self.batches.append(len(outputs))
        return [self.score(o, t, **opts) for o, t in zip(outputs, targets, strict=True)]


class LengthScorer:
    """Output length / 10 times ``scale``; needs no target."""

    name = "length"
    needs_target = False

    def score(self, output: str, target: str, **opts: Any) -> float:
        return len(output) / 10 * float(opts.get("scale", 1.0))

    def score_batch(
        self, outputs: Sequence[str], targets: Sequence[str], **opts: Any
    ) -> list[float]:
        return [self.score(o, t, **opts) for o, t in zip(outputs, targets, strict=True)]


class Counting:
    """An iterator that counts how many items were pulled from it."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items
        self.pulled = 0

    def __iter__(self) -> Counting:
        return self

    def __next__(self) -> Any:
        item = next(self.items)
        self.pulled += 1
        return item


def _samples(n: int) -> Iterator[EvalSample]:
    for i in range(n):
        yield EvalSample(id=f"s{i}", input=f"q{i}", target=f"a{i}")


def _echo(sample: EvalSample) -> str:
    return (sample.input or "").replace("q", "a")


def test_order_is_preserved_with_random_latency() -> None:
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.01) for _ in range(120)]

    def slow(sample: EvalSample) -> str:
        time.sleep(delays[int(sample.id[1:])])
        return _echo(sample)

    scorer = EqualScorer()
    config = EvalConfig(scorers=(scorer,), generate=slow)
    results = list(stream_evaluate(_samples(120), config, chunk_size=25, concurrency=8))
    assert [r.id for r in results] == [f"s{i}" for i in range(120)]
    assert all(r.scores == {"equal": 1.0} and r.error is None for r in results)
    assert scorer.batches == [25, 25, 25, 25, 20]  # one score_batch call per chunk


def test_generation_runs_concurrently() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(sample: EvalSample) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1
        return _echo(sample)

    config = EvalConfig(scorers=(EqualScorer(),), generate=slow)
    list(stream_evaluate(_samples(64), config, chunk_size=16, concurrency=8))
    assert 2 <= peak <= 8


def test_input_is_consumed_lazily() -> None:
    source = Counting(_samples(10_000))
    config = EvalConfig(scorers=(EqualScorer(),), generate=_echo)
    stream = stream_evaluate(source, config, chunk_size=25, concurrency=8)
    assert source.pulled == 0  # nothing is read before the first next()
    for taken in range(1, 131):
        next(stream)
        assert source.pulled <= taken + 2 * 25
    stream.close()  # type: ignore[attr-defined]
    assert source.pulled < 10_000


def test_failures_become_error_results_and_are_counted() -> None:
    def flaky(sample: EvalSample) -> str:
        if sample.id == "s3":
            raise TimeoutError("model did not answer")
        if sample.id == "s5":
            return "boom"
        return _echo(sample)

    raw: list[Any] = [*_samples(8), {"input": "no id"}, {"id": "t", "output": "x"}, 42]
    config = EvalConfig(scorers=(EqualScorer(fail_on="boom"), LengthScorer()), generate=flaky)
    results = list(stream_evaluate(raw, config, chunk_size=4, concurrency=4))

    assert len(results) == len(raw)
    by_id = {r.id: r for r in results}
    assert by_id["s3"].error == "generate: TimeoutError: model did not answer"
    assert by_id["s5"].error == "scorer 'equal': ValueError: cannot score 'boom'"
    assert by_id["s5"].scores == {"length": 0.4}  # the other scorer still ran
    assert by_id["<index 8>"].error == "InvalidDataError: sample has no 'id'"
    assert "'equal' needs a target" in str(by_id["t"].error)
    assert by_id["t"].scores == {"length": 0.1}
    assert by_id["<index 10>"].error is not None
    assert by_id["s4"].scores == {"equal": 1.0, "length": 0.2}  # neighbours unaffected

    metrics = aggregate_metrics(results)
    assert metrics["total"] == 11
    assert metrics["errors"] == 5
    assert metrics["scored"] == 6
    assert metrics["correct"] == 6
    assert metrics["accuracy"] == 1.0


def test_strict_raises_the_first_error() -> None:
    def broken(sample: EvalSample) -> str:
        raise RuntimeError("down")

    config = EvalConfig(scorers=(EqualScorer(),), generate=broken, strict=True)
    with pytest.raises(RuntimeError, match="down"):
        list(stream_evaluate(_samples(3), config))


def test_missing_output_without_generate_is_an_error() -> None:
    config = EvalConfig(scorers=(EqualScorer(),))
    (result,) = stream_evaluate([EvalSample(id="a", target="x")], config)
    assert "generate is not set" in str(result.error)


def test_scorer_options_and_exact_match_by_name() -> None:
    samples = [{"id": 1, "output": "Hi", "target": "Hi", "lang": "en"}]
    config = EvalConfig(
        scorers=("exact_match", LengthScorer()), scorer_options={"length": {"scale": 0.5}}
    )
    (result,) = stream_evaluate(samples, config)
    assert result.id == "1"
    assert result.scores == {"exact_match": 1.0, "length": 0.1}


def test_bad_arguments_fail_at_call_time() -> None:
    with pytest.raises(ConfigurationError):
        EvalConfig(scorers=())
    with pytest.raises(ConfigurationError):
        stream_evaluate([], EvalConfig(scorers=(EqualScorer(),)), chunk_size=0)


def test_result_json_round_trip() -> None:
    result = EvalResult(id="x", input="q", output="é", target=None, scores={"a": 0.5})
    assert EvalResult.from_json(result.to_json()) == result


# --- persistence ----------------------------------------------------------------------------


def _config() -> EvalConfig:
    return EvalConfig(scorers=(EqualScorer(),), generate=_echo)


def test_persist_writes_header_and_resume_skips_done_ids(tmp_path: Path) -> None:
    out = FilesResultsStore(tmp_path / "results.jsonl")
    stream = persist_results(
        stream_evaluate(_samples(100), _config()), out, run_fingerprint="fp1", chunk_size=10
    )
    for _ in range(37):  # the caller stops early (Ctrl-C, crash of the consumer ...)
        next(stream)
    stream.close()  # type: ignore[attr-defined]

    lines = out.path.read_text().splitlines()
    assert json.loads(lines[0]) == {"__header__": {"run_fingerprint": "fp1", "version": 1}}
    done = completed_ids(out)
    assert len(done) >= 37

    resumed = persist_results(
        stream_evaluate(_samples(100), _config(), skip_ids=done),
        out,
        run_fingerprint="fp1",
        resume=True,
    )
    new_ids = [r.id for r in resumed]
    assert not set(new_ids) & done
    ids = [r.id for r in read_results(out)]
    assert sorted(ids) == sorted(f"s{i}" for i in range(100))
    assert aggregate_metrics(read_results(out))["correct"] == 100


def test_existing_file_needs_resume_or_overwrite(tmp_path: Path) -> None:
    out = FilesResultsStore(tmp_path / "r.jsonl")
    list(persist_results(iter([EvalResult(id="a")]), out, run_fingerprint="fp"))
    with pytest.raises(ConfigurationError, match="already exists"):
        persist_results([], out, run_fingerprint="fp")
    list(persist_results([], out, run_fingerprint="fp2", overwrite=True))
    assert completed_ids(out) == frozenset()


def test_resume_refuses_a_different_fingerprint(tmp_path: Path) -> None:
    out = FilesResultsStore(tmp_path / "r.jsonl")
    list(persist_results([EvalResult(id="a")], out, run_fingerprint="aaa"))
    with pytest.raises(ConfigurationError, match=r"different run \(fingerprint aaa, expected bbb"):
        persist_results([], out, run_fingerprint="bbb", resume=True)


def test_resume_truncates_a_torn_last_line(tmp_path: Path) -> None:
    out = FilesResultsStore(tmp_path / "r.jsonl")
    list(persist_results([EvalResult(id="a"), EvalResult(id="b")], out, run_fingerprint="fp"))
    with open(out.path, "ab") as handle:
        handle.write(b'{"id": "c", "inp')  # a crash in the middle of a write
    assert completed_ids(out) == {"a", "b"}  # readers skip the torn tail
    list(persist_results([EvalResult(id="c")], out, run_fingerprint="fp", resume=True))
    assert [r.id for r in read_results(out)] == ["a", "b", "c"]
    assert out.path.read_bytes().endswith(b"\n")


def test_fingerprint_tracks_scorers_options_and_content(tmp_path: Path) -> None:
    data = tmp_path / "samples.jsonl"
    data.write_text('{"id": "a"}\n')
    base = run_fingerprint(_config(), data.read_bytes())
    assert base == run_fingerprint(_config(), data.read_bytes())
    other = EvalConfig(scorers=(EqualScorer(),), scorer_options={"equal": {"x": 1}})
    assert run_fingerprint(other, data.read_bytes()) != base
    assert run_fingerprint(_config(), data.read_bytes(), extra={"model": "m"}) != base
    data.write_text('{"id": "b"}\n')
    assert run_fingerprint(_config(), data.read_bytes()) != base


# --- aggregation ----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=0, max_size=60),
    st.floats(min_value=-10, max_value=10),
)
def test_aggregate_matches_numpy(values: list[float], threshold: float) -> None:
    results = [EvalResult(id=str(i), scores={"p": v, "q": 2 * v}) for i, v in enumerate(values)] + [
        EvalResult(id="err", error="X: y")
    ]
    metrics = aggregate_metrics(iter(results), threshold=threshold)
    n = len(values)
    assert metrics["total"] == n + 1
    assert metrics["errors"] == 1
    assert metrics["scored"] == n
    assert metrics["correct"] == sum(v >= threshold for v in values)
    if n == 0:
        assert metrics["mean_score"] == metrics["accuracy"] == 0.0
        return
    arr = np.array(values)
    std = float(arr.std(ddof=1)) if n > 1 else 0.0
    assert metrics["mean_score"] == pytest.approx(arr.mean(), abs=1e-9)
    assert metrics["std"] == pytest.approx(std, rel=1e-7, abs=1e-7)
    # The 97.5% normal quantile to full precision (1.96 is its rounding); the bounds are
    # compared with an absolute tolerance because mean ± half can cancel to near zero.
    half = 1.959963984540054 * std / math.sqrt(n) if n > 1 else 0.0
    assert metrics["ci95_low"] == pytest.approx(arr.mean() - half, abs=1e-6 * (1 + half))
    assert metrics["ci95_high"] == pytest.approx(arr.mean() + half, abs=1e-6 * (1 + half))
    assert metrics["per_scorer"]["q"]["mean"] == pytest.approx(2 * arr.mean(), abs=1e-9)
    assert metrics["per_scorer"]["q"]["n"] == n
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def test_aggregate_of_nothing_is_nan_free() -> None:
    metrics = aggregate_metrics([])
    assert metrics["total"] == 0
    assert metrics["ci95_low"] == metrics["ci95_high"] == metrics["mean_score"] == 0.0
