"""Readers of the non-JSONL dataset files (adapter layer): JSON arrays, CSV, Parquet.

Each reader yields :class:`~crucible_train.ports.dataset_store.DatasetRecord` objects and
names the file and line (CSV) or row (JSON array, Parquet) of a malformed record. CSV and
Parquet stream (Parquet one record batch at a time); a JSON array is parsed whole, since
a JSON document has no record boundaries to stream on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, Final

from crucible_train.errors import AdapterUnavailableError, DatasetFormatError, DatasetStoreError
from crucible_train.ports.dataset_store import DatasetRecord

__all__ = ["PARQUET_INSTALL_HINT", "iter_csv", "iter_json_array", "iter_parquet"]

PARQUET_INSTALL_HINT: Final = (
    "reading Parquet datasets needs pyarrow; install it with "
    "pip install 'crucible-train[datasets]' (or pip install pyarrow)"
)
_PARQUET_BATCH_ROWS: Final = 1024  # rows held in memory at once while streaming Parquet


def _open_text(path: str) -> Any:
    try:
        # utf-8-sig drops a byte-order mark, which spreadsheet exports often write.
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DatasetStoreError(f"cannot open dataset {path}: {exc.strerror or exc}") from exc


def iter_json_array(path: str) -> Iterator[DatasetRecord]:
    """The objects of a ``.json`` file holding one JSON array; ``line`` is the 1-based row.

    Raises:
        DatasetFormatError: the file is not UTF-8 JSON, not an array, or an item is not an
            object (names the row).
    """
    with _open_text(path) as handle:
        try:
            value = json.load(handle)
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(
                f"{path}: invalid UTF-8 ({exc.reason}); save as UTF-8"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(
                f"{path}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})"
            ) from exc
    if not isinstance(value, list):
        raise DatasetFormatError(
            f"{path}: a .json dataset must be one array of objects ([{{...}}, ...]), got "
            f"{type(value).__name__}; or write one object per line (JSONL)"
        )
    for row, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise DatasetFormatError(
                f"{path} row {row}: expected a JSON object ({{...}}), got {type(item).__name__}"
            )
        yield DatasetRecord(source=path, line=row, data=item, unit="row")


def _cell(text: str) -> Any:
    """A CSV cell: JSON when it holds an array or object (message lists), else the string."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text  # plain text that merely starts with a bracket
    return text


def iter_csv(path: str) -> Iterator[DatasetRecord]:
    """The rows of a CSV file with a header line; ``line`` is the row's first file line.

    Cells are strings, except cells holding a JSON array or object (a message list),
    which are decoded so that a ``messages`` column round-trips.

    Raises:
        DatasetFormatError: no header, a row with more or fewer cells than the header,
            invalid UTF-8 or broken quoting (names the line).
    """
    with _open_text(path) as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if not header or not any(name.strip() for name in header):
                raise DatasetFormatError(f"{path}:1: a CSV dataset needs a header line of columns")
            while True:
                start = reader.line_num + 1
                cells = next(reader, None)
                if cells is None:
                    return
                if not cells:
                    continue  # a blank line
                if len(cells) != len(header):
                    raise DatasetFormatError(
                        f"{path}:{start}: {len(cells)} cells for the {len(header)} columns of "
                        f"the header ({', '.join(header)}); quote cells that hold commas"
                    )
                data = {name: _cell(cell) for name, cell in zip(header, cells, strict=True)}
                yield DatasetRecord(source=path, line=start, data=data)
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(
                f"{path}:{reader.line_num + 1}: invalid UTF-8 ({exc.reason}); save as UTF-8"
            ) from exc
        except csv.Error as exc:
            raise DatasetFormatError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc


def iter_parquet(path: str) -> Iterator[DatasetRecord]:
    """The rows of a Parquet file, streamed one record batch at a time; ``line`` is the row.

    Raises:
        AdapterUnavailableError: at call time, pyarrow is not installed (with the hint).
        DatasetFormatError: at call time, the file is not Parquet.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise AdapterUnavailableError(f"dataset {path}: {PARQUET_INSTALL_HINT}") from exc
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError)
        raise DatasetFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    return _parquet_rows(parquet, path)


def _parquet_rows(parquet: Any, path: str) -> Iterator[DatasetRecord]:
    row = 0
    with parquet:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for data in batch.to_pylist():
                row += 1
                yield DatasetRecord(source=path, line=row, data=data, unit="row")
