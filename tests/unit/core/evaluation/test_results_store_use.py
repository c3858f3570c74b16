"""The batch runner over the ResultsStore port: what it appends, reads back and refuses,
checked on the in-memory fake (no file), and the fingerprint from the samples' bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
from crucible_train.errors import ConfigurationError

from fakes import FakeResultsStore

CONFIG = EvalConfig(scorers=("exact_match",))


def _results(n: int) -> list[EvalResult]:
    return [EvalResult(id=f"r{i}", output="x", scores={"exact_match": 1.0}) for i in range(n)]


def test_results_are_appended_one_chunk_at_a_time_under_the_fingerprint() -> None:
    store = FakeResultsStore()
    given = _results(23)
    passed = list(persist_results(iter(given), store, run_fingerprint="fp", chunk_size=10))
    assert passed == given
    assert store.opens == [("fp", False, False)]
    assert store.header == {"run_fingerprint": "fp", "version": 1}
    assert [len(chunk) for chunk in store.chunks] == [10, 10, 3]
    assert store.appended[0] == {
        "id": "r0",
        "input": None,
        "output": "x",
        "target": None,
        "scores": {"exact_match": 1.0},
        "error": None,
    }
    assert list(read_results(store)) == given


def test_a_result_is_passed_on_only_after_its_chunk_is_stored() -> None:
    store = FakeResultsStore()
    stream = persist_results(iter(_results(5)), store, run_fingerprint="fp", chunk_size=2)
    next(stream)
    assert [len(chunk) for chunk in store.chunks] == [2]
    stream.close()  # type: ignore[attr-defined]
    assert len(store.appended) == 2  # the yielded chunk, not stored twice


def test_a_failing_producer_still_stores_the_chunk_in_progress() -> None:
    def producer() -> Iterator[EvalResult]:
        yield from _results(7)
        raise RuntimeError("consumer of the model died")

    store = FakeResultsStore()
    with pytest.raises(RuntimeError, match="died"):
        list(persist_results(producer(), store, run_fingerprint="fp", chunk_size=5))
    assert [len(chunk) for chunk in store.chunks] == [5, 2]


def test_resume_skips_the_stored_ids_and_summarises_every_run() -> None:
    samples = [{"id": f"s{i}", "output": "a", "target": "a"} for i in range(9)]
    store = FakeResultsStore()
    first = persist_results(stream_evaluate(samples, CONFIG), store, run_fingerprint="fp")
    for _ in range(4):
        next(first)
    first.close()  # type: ignore[attr-defined]
    done = completed_ids(store)
    assert done == {f"s{i}" for i in range(9)}  # chunk_size 25: the whole chunk was stored
    store.chunks[0] = store.chunks[0][:4]  # as if the run had stopped after four results
    done = completed_ids(store)
    again = persist_results(
        stream_evaluate(samples, CONFIG, skip_ids=done), store, run_fingerprint="fp", resume=True
    )
    assert [r.id for r in again] == [f"s{i}" for i in range(4, 9)]
    assert store.opens[-1] == ("fp", True, False)
    assert aggregate_metrics(read_results(store))["correct"] == 9


def test_the_store_refuses_when_called_not_when_iterated() -> None:
    store = FakeResultsStore()
    list(persist_results(_results(1), store, run_fingerprint="aaa"))
    with pytest.raises(ConfigurationError, match="already exists"):
        persist_results(_results(1), store, run_fingerprint="aaa")
    with pytest.raises(ConfigurationError, match=r"different run \(fingerprint aaa, expected b"):
        persist_results(_results(1), store, run_fingerprint="bbb", resume=True)
    list(persist_results([], store, run_fingerprint="bbb", overwrite=True))
    assert completed_ids(store) == frozenset()


def test_an_empty_store_has_no_results() -> None:
    assert completed_ids(FakeResultsStore()) == frozenset()
    assert list(read_results(FakeResultsStore())) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda path: persist_results([], path, run_fingerprint="fp"),
        read_results,
        completed_ids,
    ],
    ids=["persist", "read", "completed"],
)
def test_a_path_instead_of_a_store_says_what_to_pass(
    tmp_path: Path, call: Callable[[Path], object]
) -> None:
    path = tmp_path / "r.jsonl"
    with pytest.raises(ConfigurationError, match=r"takes a ResultsStore, not a \w*Path"):
        call(path)
    assert not path.exists()


# --- the run fingerprint ------------------------------------------------------------------

SAMPLES_BYTES = b'{"id": "a", "output": "4", "target": "4"}\n' * 3
FINGERPRINT_CONFIG = EvalConfig(
    scorers=("exact_match", "token_f1"), scorer_options={"token_f1": {"x": 1}}, threshold=0.5
)


def test_the_fingerprint_is_the_one_0_2_stored_so_its_files_resume() -> None:
    # Computed by crucible-train 0.2's run_fingerprint(config, path) over the same file.
    fingerprint = run_fingerprint(FINGERPRINT_CONFIG, SAMPLES_BYTES, extra={"generate": False})
    assert fingerprint == "7811cd401d2e43e16fe13b82ebe5c70f"


def test_the_fingerprint_does_not_depend_on_how_the_bytes_are_split() -> None:
    whole = run_fingerprint(FINGERPRINT_CONFIG, SAMPLES_BYTES)
    blocks = (SAMPLES_BYTES[i : i + 7] for i in range(0, len(SAMPLES_BYTES), 7))
    assert run_fingerprint(FINGERPRINT_CONFIG, blocks) == whole
    assert run_fingerprint(FINGERPRINT_CONFIG, []) == run_fingerprint(FINGERPRINT_CONFIG, b"")
    assert run_fingerprint(FINGERPRINT_CONFIG, SAMPLES_BYTES + b"\n") != whole


@pytest.mark.parametrize("content", ["samples.jsonl", Path("samples.jsonl")], ids=["str", "path"])
def test_a_path_instead_of_the_samples_bytes_says_what_to_pass(content: object) -> None:
    with pytest.raises(ConfigurationError, match=r"not the path 'samples\.jsonl'; pass the file"):
        run_fingerprint(CONFIG, content)  # type: ignore[arg-type]


def test_a_text_block_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="got a str block"):
        run_fingerprint(CONFIG, [b"ok", "text"])  # type: ignore[list-item]
