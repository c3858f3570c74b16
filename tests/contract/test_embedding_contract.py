"""EmbeddingClient contract: protocol conformance; real embedders return ordered float32
rows; noop refuses to embed (never zeros)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crucible_train.errors import BackendNotConfiguredError

PORT = "embedding"

CALLS: dict[str, Callable[[Any], object]] = {
    "embed_texts": lambda c: c.embed_texts(["a text", "another"]),
}


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_dimension_is_a_width(adapter):
    assert isinstance(adapter.dimension, int)
    assert adapter.dimension >= 0


def test_calls_cover_every_port_method(port_work_methods):
    assert set(CALLS) == port_work_methods


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unconfigured_adapter_refuses(unconfigured_adapter, method):
    with pytest.raises(BackendNotConfiguredError, match=rf"\b{PORT}\.backend\b"):
        CALLS[method](unconfigured_adapter)


TEXTS = ["The cat sat on the mat.", "Stock prices fell on Tuesday.", "", "ünïcödé ✓ text"]


def test_working_adapter_shape_and_dtype(working_adapter):
    out = working_adapter.embed_texts(TEXTS)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (len(TEXTS), working_adapter.dimension)
    assert working_adapter.dimension > 0
    assert np.isfinite(out).all()
    assert np.linalg.norm(out, axis=1).min() > 0  # never zeros in place of embeddings


def test_working_adapter_empty_input(working_adapter):
    out = working_adapter.embed_texts([])
    assert out.dtype == np.float32
    assert out.shape == (0, working_adapter.dimension)


def test_working_adapter_rows_follow_their_texts(working_adapter):
    # Row i depends only on text i: reversing the input reverses the rows, and a text
    # embedded alone gets the row it got in a batch (idempotent, order-independent).
    forward = working_adapter.embed_texts(TEXTS)
    backward = working_adapter.embed_texts(TEXTS[::-1])
    np.testing.assert_allclose(backward[::-1], forward, atol=1e-5)
    alone = working_adapter.embed_texts([TEXTS[1]])
    np.testing.assert_allclose(alone[0], forward[1], atol=1e-5)
    assert not np.allclose(forward[0], forward[1])
