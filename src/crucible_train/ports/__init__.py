"""Ports: the small contracts core code depends on; adapters implement them.

One module per port. Ports import only the standard library, attrs, numpy and
:mod:`crucible_train.types` / :mod:`crucible_train.errors`. :data:`PORTS` lists the ports
configured in ``containers.yaml``; the :class:`RunStore` and the :class:`ResultsStore` are
not among them (the container builds one per run directory, or per results file).
"""

from __future__ import annotations

from crucible_train.ports.blob_store import BlobStore
from crucible_train.ports.dataset_store import DatasetRecord, DatasetStore
from crucible_train.ports.embedding import EmbeddingClient
from crucible_train.ports.http import HttpClient, HttpResponse
from crucible_train.ports.hub import HubClient
from crucible_train.ports.llm import Completion, LLMClient, LLMParams
from crucible_train.ports.metrics import MetricsSink, MetricValue
from crucible_train.ports.model_info import ModelConfig, ModelInfo
from crucible_train.ports.results_store import RESULTS_FORMAT_VERSION, ResultsStore
from crucible_train.ports.run_store import CheckpointRecord, RunStore
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.tokenizer import Tokenizer
from crucible_train.ports.training import CustomLossFn, CustomLossResult, TrainingClient
from crucible_train.ports.vector_store import VectorMatch, VectorStore

__all__ = [
    "RESULTS_FORMAT_VERSION",
    "BlobStore",
    "CheckpointRecord",
    "Completion",
    "CustomLossFn",
    "CustomLossResult",
    "DatasetRecord",
    "DatasetStore",
    "EmbeddingClient",
    "HttpClient",
    "HttpResponse",
    "HubClient",
    "LLMClient",
    "LLMParams",
    "MetricValue",
    "MetricsSink",
    "ModelConfig",
    "ModelInfo",
    "ResultsStore",
    "RunStore",
    "SamplingClient",
    "Tokenizer",
    "TrainingClient",
    "VectorMatch",
    "VectorStore",
]

PORTS: dict[str, type] = {
    "training": TrainingClient,
    "sampling": SamplingClient,
    "tokenizer": Tokenizer,
    "model_info": ModelInfo,
    "metrics": MetricsSink,
    "http": HttpClient,
    "embedding": EmbeddingClient,
    "llm": LLMClient,
    "blob_store": BlobStore,
    "dataset_store": DatasetStore,
    "vector_store": VectorStore,
    "hub": HubClient,
}
"""``containers.yaml`` top-level key → the port it configures."""
