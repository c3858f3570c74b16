"""One fake per port: in-memory implementations that record their effects, so tests assert
on end state instead of on calls (cosmicpython style).

Each module holds the fake of one port (``training.py``: :class:`FakeTrainingClient`, ...);
every fake subclasses its port and is run through that port's contract suite
(``tests/contract/``), so it keeps the promises the real adapters keep. Make a fake
behave differently with its constructor options (scripted replies, failures), never with
a second stand-in class.
"""

from __future__ import annotations

from fakes.blob_store import FakeBlobStore
from fakes.dataset_store import FakeDatasetStore
from fakes.embedding import FakeEmbeddingClient
from fakes.http import FakeHttpClient, FakeHttpRequest
from fakes.hub import FakeHubClient
from fakes.llm import FakeLLMClient
from fakes.metrics import FakeMetricsSink
from fakes.model_info import FakeModelInfo
from fakes.results_store import FakeResultsStore
from fakes.run_store import FakeRunStore
from fakes.sampling import FakeSamplingClient
from fakes.tokenizer import FakeTokenizer
from fakes.training import FakeBatch, FakeTrainingClient, FakeTrainingState
from fakes.vector_store import FakeVectorStore

__all__ = [
    "FAKES",
    "FakeBatch",
    "FakeBlobStore",
    "FakeDatasetStore",
    "FakeEmbeddingClient",
    "FakeHttpClient",
    "FakeHttpRequest",
    "FakeHubClient",
    "FakeLLMClient",
    "FakeMetricsSink",
    "FakeModelInfo",
    "FakeResultsStore",
    "FakeRunStore",
    "FakeSamplingClient",
    "FakeTokenizer",
    "FakeTrainingClient",
    "FakeTrainingState",
    "FakeVectorStore",
]

FAKES: dict[str, type] = {
    "training": FakeTrainingClient,
    "sampling": FakeSamplingClient,
    "tokenizer": FakeTokenizer,
    "model_info": FakeModelInfo,
    "metrics": FakeMetricsSink,
    "http": FakeHttpClient,
    "embedding": FakeEmbeddingClient,
    "llm": FakeLLMClient,
    "blob_store": FakeBlobStore,
    "dataset_store": FakeDatasetStore,
    "vector_store": FakeVectorStore,
    "hub": FakeHubClient,
    "run_store": FakeRunStore,
    "results_store": FakeResultsStore,
}
"""Port key (as in :data:`crucible_train.ports.PORTS`, plus ``run_store`` and
``results_store``) → its fake."""
