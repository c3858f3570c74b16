"""VectorStore contract: exact cosine top-k, ordering, replace, delete, zero vectors, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crucible_train.errors import BackendNotConfiguredError, VectorStoreError
from crucible_train.ports import VectorMatch

PORT = "vector_store"

CALLS: dict[str, Callable[[Any], object]] = {
    "upsert": lambda s: s.upsert(["a"], np.ones((1, 3), dtype=np.float32)),
    "query": lambda s: s.query(np.ones(3, dtype=np.float32)),
    "delete": lambda s: s.delete(["a"]),
}


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def ids(matches: list[VectorMatch]) -> list[str]:
    return [match.id for match in matches]


@pytest.fixture
def store(working_adapter):
    working_adapter.upsert(
        ["x", "y", "xy", "-x"],
        np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32),
        [{"name": "x"}, {"name": "y"}, {"name": "xy"}, {"name": "-x"}],
    )
    return working_adapter


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_calls_cover_every_port_method(port_work_methods):
    assert set(CALLS) == port_work_methods


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)


def test_empty_store_answers_nothing(working_adapter):
    assert len(working_adapter) == 0
    assert working_adapter.query(vec(1, 0), top_k=3) == []


def test_top_k_best_first_with_cosine_scores(store):
    matches = store.query(vec(2, 0), top_k=3)
    assert ids(matches) == ["x", "xy", "y"]
    assert [m.score for m in matches] == pytest.approx([1.0, 2**-0.5, 0.0], abs=1e-6)
    assert matches[0].metadata == {"name": "x"}
    assert all(isinstance(m, VectorMatch) for m in matches)


def test_scores_are_in_range_and_sorted(store):
    matches = store.query(vec(0.3, -0.7), top_k=10)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert len(matches) == len(store) == 4
    assert matches[-1].id == "y"


def test_top_k_larger_than_store_returns_everything(store):
    assert len(store.query(vec(1, 1), top_k=100)) == 4


def test_ties_are_broken_by_id(working_adapter):
    same = np.tile(vec(1, 2, 3), (4, 1))
    working_adapter.upsert(["d", "b", "c", "a"], same)
    assert ids(working_adapter.query(vec(1, 2, 3), top_k=4)) == ["a", "b", "c", "d"]
    assert ids(working_adapter.query(vec(1, 2, 3), top_k=2)) == ["a", "b"]


def test_upsert_of_existing_id_replaces_vector_and_metadata(store):
    store.upsert(["x"], np.array([[0, -1]], dtype=np.float32), [{"name": "new"}])
    assert len(store) == 4
    top = store.query(vec(0, -1), top_k=1)[0]
    assert (top.id, top.metadata) == ("x", {"name": "new"})
    assert top.score == pytest.approx(1.0)


def test_metadata_defaults_to_empty(working_adapter):
    working_adapter.upsert(["a"], vec(1, 0)[None, :])
    assert working_adapter.query(vec(1, 0))[0].metadata == {}


def test_metadata_is_copied(working_adapter):
    meta = {"tags": ["a"]}
    working_adapter.upsert(["a"], vec(1, 0)[None, :], [meta])
    meta["tags"].append("changed")
    result = working_adapter.query(vec(1, 0))[0]
    assert result.metadata == {"tags": ["a"]}
    result.metadata["tags"].append("changed-again")
    assert working_adapter.query(vec(1, 0))[0].metadata == {"tags": ["a"]}


def test_delete_removes_and_ignores_unknown_ids(store):
    store.delete(["x", "unknown"])
    store.delete(["x"])
    assert len(store) == 3
    assert "x" not in ids(store.query(vec(1, 0), top_k=10))


def test_delete_everything_then_reuse(store):
    store.delete(["x", "y", "xy", "-x"])
    assert len(store) == 0
    assert store.query(vec(1, 0)) == []
    store.upsert(["z"], vec(0, 1)[None, :])
    assert ids(store.query(vec(0, 1))) == ["z"]


def test_zero_vectors_score_zero(working_adapter):
    working_adapter.upsert(["zero", "one"], np.array([[0, 0], [1, 0]], dtype=np.float32))
    matches = working_adapter.query(vec(1, 0), top_k=2)
    assert [(m.id, m.score) for m in matches] == [("one", pytest.approx(1.0)), ("zero", 0.0)]
    zero_query = working_adapter.query(vec(0, 0), top_k=2)
    assert [(m.id, m.score) for m in zero_query] == [("one", 0.0), ("zero", 0.0)]


def test_float64_input_is_accepted(working_adapter):
    working_adapter.upsert(["a"], np.array([[0.5, 0.5]], dtype=np.float64))
    assert working_adapter.query(np.array([1.0, 1.0]))[0].score == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s: s.upsert(["a"], np.ones((1, 3))), "dimension", id="upsert-width"),
        pytest.param(lambda s: s.query(np.ones(3)), "dimension", id="query-width"),
        pytest.param(lambda s: s.upsert(["a"], np.ones(2)), "shape", id="upsert-1d"),
        pytest.param(lambda s: s.upsert(["a", "b"], np.ones((1, 2))), "shape", id="row-count"),
        pytest.param(lambda s: s.query(np.ones((1, 2))), "shape", id="query-2d"),
        pytest.param(lambda s: s.upsert(["a"], np.array([[np.nan, 1]])), "NaN", id="nan"),
        pytest.param(lambda s: s.upsert(["a"], np.array([[np.inf, 1]])), "infinite", id="inf"),
        pytest.param(lambda s: s.query(np.array([np.nan, 0.0])), "NaN", id="query-nan"),
        pytest.param(lambda s: s.upsert(["a", "a"], np.ones((2, 2))), "duplicate", id="dup"),
        pytest.param(lambda s: s.query(np.ones(2), top_k=0), "top_k", id="top_k-0"),
        pytest.param(lambda s: s.query(np.ones(2), top_k=-1), "top_k", id="top_k-neg"),
        pytest.param(
            lambda s: s.upsert(["a"], np.ones((1, 2)), [{}, {}]), "metadata", id="meta-count"
        ),
        pytest.param(lambda s: s.upsert([""], np.ones((1, 2))), "id", id="empty-id"),
        pytest.param(lambda s: s.upsert([7], np.ones((1, 2))), "id", id="non-str-id"),
    ],
)
def test_invalid_calls_raise_and_change_nothing(working_adapter, call, message):
    working_adapter.upsert(["keep"], np.array([[1, 0]], dtype=np.float32), [{"k": 1}])
    with pytest.raises(VectorStoreError, match=message):
        call(working_adapter)
    assert len(working_adapter) == 1
    match = working_adapter.query(vec(1, 0))[0]
    assert (match.id, match.metadata) == ("keep", {"k": 1})
