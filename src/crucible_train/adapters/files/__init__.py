"""Local filesystem adapters (adapter layer, ``os`` and ``json``): blobs and JSONL datasets."""

from __future__ import annotations

from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.files.dataset_store import FilesDatasetStore

__all__ = ["FilesBlobStore", "FilesDatasetStore"]
