"""Dataset file store (adapter layer, local filesystem, stdlib ``json``/``csv``, lazy pyarrow).

The file's suffix picks the format: JSONL (any suffix but those below), ``.json`` (one
JSON array of objects; a ``.json`` file that does not start with ``[`` is read as JSONL,
as before), ``.csv`` (header line, stdlib :mod:`csv`), ``.parquet`` (pyarrow, imported
only when a Parquet file is read) and directories (Hugging Face ``datasets``, imported only
when a directory is read; see ``_hf_datasets``). JSONL and CSV are streamed a line at a
time and Parquet a record batch at a time, so memory stays flat however large the dataset
is. Every problem names the file and the 1-based line (``path:LINE: what is wrong``, the
form editors and terminals can jump to) or, for JSON arrays and Parquet, the row
(``path row N: ...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Final

from crucible_train.adapters.files._formats import iter_csv, iter_json_array, iter_parquet
from crucible_train.adapters.files._hf_datasets import iter_hf_directory, split_source
from crucible_train.errors import (
    ConfigurationError,
    DatasetFormatError,
    DatasetNotFoundError,
    DatasetStoreError,
)
from crucible_train.ports.dataset_store import DatasetRecord, DatasetStore

__all__ = ["FilesDatasetStore"]

_BOM: Final = b"\xef\xbb\xbf"
_ARRAY_HINT: Final = "this looks like a JSON array; write one object per line (JSONL)"
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")


def _starts_with_bracket(path: str) -> bool:
    """Whether the file's first non-blank character (after a BOM) is ``[``: a JSON array."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    return head.lstrip()[:1] == b"["


def _json_type_name(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number"


class FilesDatasetStore(DatasetStore):
    """Streams dataset files: JSONL, JSON arrays, CSV and Parquet (picked by suffix).

    Args:
        root: absolute directory that relative sources are resolved against; absolute
            sources are used as given. ``.csv`` files are CSV, ``.parquet``/``.pq`` files
            Parquet, ``.json`` files starting with ``[`` JSON arrays, anything else JSONL
            (one JSON object per line, blank lines skipped). A directory is a Hugging Face
            dataset (``save_to_disk`` output, or data files for ``load_dataset``; needs
            the ``datasets`` package), ``DIR:SPLIT`` one of its splits.

    Raises:
        ConfigurationError: ``root`` is empty or not absolute.

    Safe to use from several threads: each ``iter_records`` call opens its own file.
    """

    def __init__(self, *, root: str) -> None:
        if not isinstance(root, str) or not root:
            raise ConfigurationError("FilesDatasetStore root must be a non-empty absolute path")
        if not os.path.isabs(root):
            raise ConfigurationError(
                f"FilesDatasetStore root {root!r} is relative; pass an absolute path "
                "(the container resolves dataset_store paths against the config directory)"
            )
        self._root = os.path.normpath(root)

    @property
    def root(self) -> str:
        """The directory relative sources are resolved against."""
        return self._root

    def __repr__(self) -> str:
        return f"FilesDatasetStore(root={self._root!r})"

    def resolve(self, source: str) -> str:
        """The absolute, normalised path ``source`` names (relative to ``root`` if relative)."""
        return os.path.normpath(os.path.join(self._root, os.fspath(source)))

    def iter_records(self, source: str) -> Iterator[DatasetRecord]:
        """Yield every record of the dataset file ``source``, in file order.

        Args:
            source: a path, absolute or relative to ``root``.

        Returns:
            An iterator of :class:`~crucible_train.ports.dataset_store.DatasetRecord` whose
            ``source`` is the resolved path and ``line`` the 1-based line number (JSONL,
            CSV) or row number (JSON arrays, Parquet: ``unit="row"``).

        Raises:
            DatasetNotFoundError: at call time, when the file does not exist.
            AdapterUnavailableError: at call time, a directory without ``datasets``
                installed (the message says how to install it).
            DatasetStoreError: at call time, a directory whose split is missing or that
                ``datasets`` cannot read.
            DatasetFormatError: during iteration, at the first line or row that is not valid
                UTF-8, not JSON, JSON that is not an object, or a CSV row that does not fit
                the header; earlier records were yielded.
            DatasetStoreError: during iteration, a Parquet file without pyarrow installed
                (the message says how to install it).
        """
        if not isinstance(source, str | os.PathLike) or not os.fspath(source):
            raise DatasetStoreError(f"dataset source {source!r} must be a non-empty path")
        path, split = split_source(self.resolve(source))
        # Checked here, not inside the generator, so the error surfaces at the call site.
        if os.path.isdir(path):
            return iter_hf_directory(path, split)
        if not os.path.exists(path):
            raise DatasetNotFoundError(f"dataset {path} does not exist (source {source!r})")
        lowered = path.lower()
        if lowered.endswith(".csv"):
            return iter_csv(path)
        if lowered.endswith(_PARQUET_SUFFIXES):
            return iter_parquet(path)
        if lowered.endswith(".json") and _starts_with_bracket(path):
            return iter_json_array(path)
        return self._stream(path)

    def _stream(self, path: str) -> Iterator[DatasetRecord]:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"dataset {path} does not exist") from exc
        except OSError as exc:
            raise DatasetStoreError(f"cannot open dataset {path}: {exc.strerror or exc}") from exc
        seen_content = False
        with handle:
            # Binary iteration splits on b"\n" only, so a stray "\r" or U+2028 inside a
            # JSON string cannot shift line numbers away from what an editor shows.
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DatasetFormatError(
                        f"{path}:{number}: invalid UTF-8 at byte {exc.start + 1} of the line "
                        f"({exc.reason}); save the file as UTF-8"
                    ) from exc
                if not text.strip():
                    continue
                first = not seen_content
                seen_content = True
                yield DatasetRecord(
                    source=path, line=number, data=self._parse(path, number, text, first)
                )

    @staticmethod
    def _parse(path: str, number: int, text: str, first: bool) -> dict[str, object]:
        looks_like_array = first and text.lstrip().startswith("[")
        hint = f"; {_ARRAY_HINT}" if looks_like_array else ""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(
                f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno}){hint}"
            ) from exc
        if not isinstance(value, dict):
            raise DatasetFormatError(
                f"{path}:{number}: expected a JSON object ({{...}}), got "
                f"{_json_type_name(value)}{hint}"
            )
        return value
