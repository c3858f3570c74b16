"""Unit tests for NumpyVectorStore: exactness against a reference, growth, ties, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crucible_train.adapters.memory.vector_store import NumpyVectorStore
from crucible_train.errors import ConfigurationError, VectorStoreError


def reference_top_k(
    ids: list[str], matrix: np.ndarray, query: np.ndarray, top_k: int
) -> list[tuple[str, float]]:
    """Brute-force cosine ranking in float64, ties by id."""
    m = matrix.astype(np.float32).astype(np.float64)
    q = query.astype(np.float32).astype(np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
    scores = [
        round(float(m[i] @ q / norms[i]), 12) if norms[i] > 0 else 0.0 for i in range(len(ids))
    ]
    ranked = sorted(zip(ids, scores, strict=True), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:top_k]


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", [0, -3, 2.0, True, "4"])
def test_invalid_dimension_is_refused(dimension):
    with pytest.raises(ConfigurationError, match="dimension"):
        NumpyVectorStore(dimension=dimension)


def test_fixed_dimension_is_enforced_from_the_start():
    store = NumpyVectorStore(dimension=3)
    assert store.dimension == 3
    with pytest.raises(VectorStoreError, match="width 2 but this store holds 3-dimensional"):
        store.upsert(["a"], np.ones((1, 2)))
    with pytest.raises(VectorStoreError, match="dimension mismatch"):
        store.query(np.ones(2))


def test_dimension_is_taken_from_the_first_upsert():
    store = NumpyVectorStore()
    assert store.dimension is None
    assert store.query(np.ones(7)) == []
    store.upsert(["a"], np.ones((1, 4)))
    assert store.dimension == 4
    assert repr(store) == "NumpyVectorStore(dimension=4, size=1)"


def test_empty_upsert_is_a_no_op():
    store = NumpyVectorStore()
    store.upsert([], np.empty((0, 3)))
    store.upsert([], np.array([]))
    assert len(store) == 0
    assert store.dimension is None


# --- exactness ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    count=st.integers(1, 40),
    width=st.integers(1, 6),
    top_k=st.integers(1, 50),
)
def test_matches_a_brute_force_reference(data, count, width, top_k):
    values = st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    rows = data.draw(
        st.lists(st.lists(values, min_size=width, max_size=width), min_size=count, max_size=count)
    )
    query = np.array(data.draw(st.lists(values, min_size=width, max_size=width)))
    matrix = np.array(rows)
    ids = [f"id{index:02d}" for index in range(count)]
    store = NumpyVectorStore()
    # Upsert in a shuffled order and in chunks so row order differs from id order.
    order = data.draw(st.permutations(range(count)))
    for start in range(0, count, 7):
        chunk = order[start : start + 7]
        store.upsert([ids[i] for i in chunk], matrix[chunk])
    got = [(m.id, m.score) for m in store.query(query, top_k=top_k)]
    expected = reference_top_k(ids, matrix, query, top_k)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-9)


def test_parallel_vectors_of_different_lengths_tie():
    store = NumpyVectorStore()
    store.upsert(["c", "a", "b"], np.array([[0.5, 1.5], [7.0, 21.0], [0.125, 0.375]]))
    matches = store.query(np.array([0.2, 0.7]), top_k=3)
    assert [m.id for m in matches] == ["a", "b", "c"]
    assert len({m.score for m in matches}) == 1


def test_ties_at_the_cut_keep_the_smallest_ids():
    store = NumpyVectorStore()
    ids = [f"v{i}" for i in range(20, 0, -1)]  # inserted in reverse id order
    store.upsert(ids, np.tile([1.0, 1.0], (20, 1)))
    store.upsert(["best"], np.array([[1.0, 1.01]]))
    got = [m.id for m in store.query(np.array([1.0, 1.01]), top_k=4)]
    assert got == ["best", "v1", "v10", "v11"]


def test_random_deletes_and_replacements_match_the_reference():
    rng = np.random.default_rng(7)
    store = NumpyVectorStore()
    live: dict[str, np.ndarray] = {}
    for step in range(300):
        item = f"k{rng.integers(0, 60)}"
        if rng.random() < 0.3:
            store.delete([item])
            live.pop(item, None)
        else:
            vector = rng.normal(size=5)
            store.upsert([item], vector[None, :], [{"step": step}])
            live[item] = vector
    assert len(store) == len(live)
    query = rng.normal(size=5)
    ids = sorted(live)
    expected = reference_top_k(ids, np.array([live[i] for i in ids]), query, 10)
    got = store.query(query, top_k=10)
    assert [m.id for m in got] == [i for i, _ in expected]


def test_integer_vectors_are_accepted():
    store = NumpyVectorStore()
    store.upsert(["a"], np.array([[3, 4]]))
    assert store.query(np.array([3, 4]))[0].score == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.array([[True, False]]), "dtype"),
        (np.array([["a", "b"]]), "dtype"),
        (np.array([[1e300, 1.0]]), "infinite"),
        ([[1.0, "x"]], "dtype"),
    ],
)
def test_non_numeric_or_overflowing_vectors_are_refused(vectors, message):
    with pytest.raises(VectorStoreError, match=message):
        NumpyVectorStore().upsert(["a"], vectors)


def test_single_string_ids_are_refused():
    store = NumpyVectorStore()
    with pytest.raises(VectorStoreError, match="single string"):
        store.upsert("ab", np.ones((2, 2)))
    with pytest.raises(VectorStoreError, match="single string"):
        store.delete("ab")


def test_duplicate_ids_are_listed_in_the_message():
    with pytest.raises(VectorStoreError, match=r"duplicate ids \['a', 'b'\]"):
        NumpyVectorStore().upsert(["a", "b", "a", "b", "c"], np.ones((5, 2)))


def test_non_mapping_metadata_is_refused():
    with pytest.raises(VectorStoreError, match=r"metadata\[0\] is a list"):
        NumpyVectorStore().upsert(["a"], np.ones((1, 2)), [["not", "a", "mapping"]])


def test_numpy_integer_top_k_is_accepted():
    store = NumpyVectorStore()
    store.upsert(["a", "b"], np.eye(2))
    assert len(store.query(np.array([1.0, 0.0]), top_k=np.int64(1))) == 1
    with pytest.raises(VectorStoreError, match="top_k"):
        store.query(np.array([1.0, 0.0]), top_k=True)


# --- storage ------------------------------------------------------------------------------


def test_growth_is_amortised():
    store = NumpyVectorStore()
    capacities = set()
    for index in range(1000):
        store.upsert([f"id{index}"], np.ones((1, 8)))
        capacities.add(store._matrix.shape[0])
    # Doubling from 16 reaches 1024 in 7 reallocations; a vstack per upsert would make 1000.
    assert sorted(capacities) == [16, 32, 64, 128, 256, 512, 1024]
    assert store._matrix.dtype == np.float32


def test_concurrent_upserts_and_queries():
    store = NumpyVectorStore(dimension=4)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            rng = np.random.default_rng(worker)
            for index in range(100):
                store.upsert([f"w{worker}-{index}"], rng.normal(size=(1, 4)))
                store.query(rng.normal(size=4), top_k=3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store) == 600
    assert len(store.query(np.ones(4), top_k=1000)) == 600
