"""Local filesystem adapters (adapter layer, ``os``, ``json``, ``csv``; lazily pyarrow and
``datasets``): blobs, dataset files,
the run-directory metrics sink and run store, and the eval results store."""

from __future__ import annotations

from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink

__all__ = ["FilesBlobStore", "FilesDatasetStore", "FilesMetricsSink"]
