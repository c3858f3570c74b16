"""Noop adapters (adapter layer, no technology): one per port, no arguments, no I/O.

Where doing nothing is meaningful the adapter does it (metrics are validated and dropped,
blobs live in memory, model info is all ``None``). Where it is not (training, sampling,
tokenizing, HTTP, embedding, LLM, datasets, vectors, hub) every work method raises
:class:`~crucible_train.errors.BackendNotConfiguredError` naming the ``containers.yaml``
key to set, so a run never silently does nothing.
"""

from __future__ import annotations

from crucible_train.adapters.noop.blob_store import NoopBlobStore
from crucible_train.adapters.noop.dataset_store import NoopDatasetStore
from crucible_train.adapters.noop.embedding import NoopEmbeddingClient
from crucible_train.adapters.noop.http_client import NoopHttpClient
from crucible_train.adapters.noop.hub import NoopHubClient
from crucible_train.adapters.noop.llm import NoopLLMClient
from crucible_train.adapters.noop.metrics import NoopMetricsSink
from crucible_train.adapters.noop.model_info import NoopModelInfo
from crucible_train.adapters.noop.sampling import NoopSamplingClient
from crucible_train.adapters.noop.tokenizer import NoopTokenizer
from crucible_train.adapters.noop.training import NoopTrainingClient
from crucible_train.adapters.noop.vector_store import NoopVectorStore

__all__ = [
    "NoopBlobStore",
    "NoopDatasetStore",
    "NoopEmbeddingClient",
    "NoopHttpClient",
    "NoopHubClient",
    "NoopLLMClient",
    "NoopMetricsSink",
    "NoopModelInfo",
    "NoopSamplingClient",
    "NoopTokenizer",
    "NoopTrainingClient",
    "NoopVectorStore",
]
