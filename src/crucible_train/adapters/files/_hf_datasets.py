"""Hugging Face ``datasets`` directories on local disk (adapter layer, lazy ``datasets``).

Two kinds of directory are read, never downloading anything:

* a ``save_to_disk`` directory (``state.json`` for a ``Dataset``, ``dataset_dict.json`` for
  a ``DatasetDict``): opened with ``load_from_disk``, which memory-maps the Arrow files, so
  rows stream without loading the dataset into memory;
* any other directory of data files (``.jsonl``, ``.json``, ``.csv``, ``.parquet``, ...):
  ``load_dataset(directory, streaming=True)``, which infers the format from the files and
  streams them without writing a cache.

A ``DatasetDict`` (or a directory with several splits) gives its ``train`` split, or its
only split; ``directory:SPLIT`` picks another one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Final

from crucible_train.errors import AdapterUnavailableError, DatasetFormatError, DatasetStoreError
from crucible_train.ports.dataset_store import DatasetRecord

__all__ = ["DATASETS_INSTALL_HINT", "is_saved_dataset", "iter_hf_directory", "split_source"]

DATASETS_INSTALL_HINT: Final = (
    "reading a Hugging Face dataset directory needs the datasets package; install it with "
    "pip install 'crucible-train[datasets]' (or pip install datasets)"
)
_SAVED_MARKERS: Final = ("state.json", "dataset_dict.json")


def is_saved_dataset(path: str) -> bool:
    """Whether ``path`` is a directory written by ``save_to_disk``."""
    return any(os.path.isfile(os.path.join(path, name)) for name in _SAVED_MARKERS)


def split_source(path: str) -> tuple[str, str | None]:
    """``DIR:SPLIT`` → ``(DIR, SPLIT)`` when ``DIR`` is a directory; else ``(path, None)``."""
    head, sep, tail = path.rpartition(":")
    if sep and tail and os.sep not in tail and os.path.isdir(head):
        return head, tail
    return path, None


def _import_datasets(path: str) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise AdapterUnavailableError(f"dataset {path}: {DATASETS_INSTALL_HINT}") from exc
    return datasets


def _pick_split(splits: Any, path: str, split: str | None) -> Any:
    names = list(splits.keys())
    if split is None:
        if "train" in names:
            split = "train"
        elif len(names) == 1:
            split = names[0]
        else:
            raise DatasetStoreError(
                f"dataset {path} has splits {', '.join(names)} and none is 'train'; name one "
                f"as {path}:SPLIT"
            )
    if split not in names:
        raise DatasetStoreError(
            f"dataset {path} has no split {split!r}; its splits: {', '.join(names) or 'none'}"
        )
    return splits[split]


def iter_hf_directory(path: str, split: str | None = None) -> Iterator[DatasetRecord]:
    """The rows of a dataset directory (see the module docstring); ``line`` is the row.

    Raises:
        AdapterUnavailableError: ``datasets`` is not installed (at call time, with the hint).
        DatasetStoreError: the directory holds no data files, the split does not exist,
            or the directory cannot be read.
    """
    if not is_saved_dataset(path) and not any(
        not name.startswith(".") and os.path.isfile(os.path.join(path, name))
        for name in os.listdir(path)
    ):
        raise DatasetStoreError(
            f"dataset {path} is a directory without data files; name a .jsonl, .json, .csv "
            "or .parquet file, or a directory written by save_to_disk"
        )
    datasets = _import_datasets(path)
    try:
        if is_saved_dataset(path):
            loaded = datasets.load_from_disk(path)
        else:
            loaded = datasets.load_dataset(path, streaming=True)
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise DatasetStoreError(f"cannot read dataset directory {path}: {exc}") from exc
    rows = loaded if isinstance(loaded, datasets.Dataset) else _pick_split(loaded, path, split)
    if isinstance(loaded, datasets.Dataset) and split not in (None, str(loaded.split or "")):
        raise DatasetStoreError(
            f"dataset {path} is a single split ({loaded.split or 'unnamed'}); drop :{split}"
        )
    return _stream(rows, path)


def _stream(rows: Any, path: str) -> Iterator[DatasetRecord]:
    row = 0
    try:
        for data in rows:
            row += 1
            yield DatasetRecord(source=path, line=row, data=dict(data), unit="row")
    except (OSError, ValueError) as exc:  # a data file that does not parse
        raise DatasetFormatError(
            f"{path} row {row + 1}: a data file does not parse ({exc})"
        ) from exc
