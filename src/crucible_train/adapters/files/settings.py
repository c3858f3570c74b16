"""Settings of the local filesystem backends (adapter layer): blobs, datasets, metrics."""

from __future__ import annotations

import attrs

from crucible_train.config import path_field

__all__ = ["FilesBlobStoreSettings", "FilesDatasetStoreSettings", "FilesMetricsSinkSettings"]


@attrs.frozen(kw_only=True)
class FilesBlobStoreSettings:
    """``blob_store.files``: blobs as files under a local directory.

    Args:
        root: directory holding the blobs (relative: against the start directory).
    """

    root: str = path_field(default="runs/blobs")


@attrs.frozen(kw_only=True)
class FilesDatasetStoreSettings:
    """``dataset_store.files``: dataset files (JSONL, JSON, CSV, Parquet, HF dirs) on local disk.

    Args:
        root: directory that relative dataset sources are read from.
    """

    root: str = path_field(default=".")


@attrs.frozen(kw_only=True)
class FilesMetricsSinkSettings:
    """``metrics.files``: metrics.jsonl, config.json and texts in ``metrics.run_dir``.

    No settings of its own: the directory is ``metrics.run_dir``.
    """
