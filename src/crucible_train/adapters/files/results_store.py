"""Results store over one JSONL file (adapter layer, ``os`` and ``json``).

The file (the format of crucible-train 0.2, so its results files resume):

* the first line is the header ``{"__header__": {"run_fingerprint": F, "version": 1}}``;
* then one record per line, ``json.dumps(record, ensure_ascii=False, allow_nan=False)``.

An append is one ``write`` of the whole chunk followed by ``fsync``, so a crash can only
leave an unterminated last line: readers skip it and the next resume cuts it off. A file
that holds only a torn header recorded nothing and is started again on resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.results_store import RESULTS_FORMAT_VERSION, ResultsStore

__all__ = ["HEADER_KEY", "FilesResultsStore"]

HEADER_KEY = "__header__"
_HEADER_PREFIX = b'{"' + HEADER_KEY.encode() + b'"'
_BLOCK = 65536  # bytes read per step while looking for the last newline


class FilesResultsStore(ResultsStore):
    """The results log in the JSONL file ``path``.

    Args:
        path: the results file (it and its folder are created by :meth:`open_run`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._open = False

    def __repr__(self) -> str:
        return f"FilesResultsStore({str(self._path)!r})"

    @property
    def location(self) -> str:
        """The results file."""
        return str(self._path)

    @property
    def path(self) -> Path:
        """The results file."""
        return self._path

    def open_run(self, fingerprint: str, *, resume: bool = False, overwrite: bool = False) -> None:
        """Check, repair or (re)start the file; a new file gets its header, fsynced.

        Raises:
            ConfigurationError: as the port says; the messages name the file and the
                ``--out``/``--resume`` options that fix it.
        """
        path = self._path
        exists = path.exists() and path.stat().st_size > 0
        if exists and resume:
            _truncate_torn_tail(path)
            header = _read_header(path)
            if header is not None:
                found = header.get("run_fingerprint")
                if found != fingerprint:
                    raise ConfigurationError(
                        f"results file {path} was written by a different run (fingerprint "
                        f"{found}, expected {fingerprint}); use a new --out or drop --resume"
                    )
                self._open = True
                return
            # Only a torn header survived: nothing was recorded, start the file again.
        elif exists and not overwrite:
            raise ConfigurationError(
                f"results file {path} already exists; pass --resume to continue it, "
                "or choose a new --out"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            _write_all(fd, _header_line(fingerprint))
        finally:
            os.close(fd)
        self._open = True

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append the chunk as one write followed by ``fsync``."""
        if not self._open:
            raise ConfigurationError(
                f"results file {self._path} is not open; call open_run(fingerprint) first"
            )
        if not records:
            return
        data = _lines(records)  # before opening: a bad record writes nothing
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    def records(self) -> Iterator[dict[str, Any]]:
        """The records of the file; its header and a torn last line are skipped.

        A file that does not exist yields nothing; the file is never changed.
        """
        if not self._path.exists():
            return
        with open(self._path, "rb") as handle:
            for number, line in enumerate(handle):
                if not line.endswith(b"\n"):
                    return  # torn tail of an interrupted write
                if number == 0 and line.startswith(_HEADER_PREFIX):
                    continue
                yield _decode(line, f"{self._path}:{number + 1}")


def _header_line(fingerprint: str) -> bytes:
    header = {HEADER_KEY: {"run_fingerprint": fingerprint, "version": RESULTS_FORMAT_VERSION}}
    return (json.dumps(header) + "\n").encode()


def _read_header(path: Path) -> dict[str, Any] | None:
    """The header of a results file, or ``None`` if no complete first line exists."""
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first.endswith(b"\n"):
        return None
    try:
        header = json.loads(first)[HEADER_KEY]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"results file {path} has no crucible-train header; choose a new --out"
        ) from exc
    if not isinstance(header, dict):
        raise ConfigurationError(f"results file {path} has a malformed header")
    return header


def _truncate_torn_tail(path: Path) -> None:
    """Cut an unterminated last line (a write interrupted by a crash) off the file."""
    with open(path, "r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            step = min(_BLOCK, position)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = position - step + newline + 1
                break
            position -= step
        else:
            keep = 0
        if keep != end:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _lines(records: Sequence[Mapping[str, Any]]) -> bytes:
    lines: list[str] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidDataError(
                f"result record {index} of the chunk is a {type(record).__name__}; "
                "expected a JSON object (a mapping)"
            )
        try:
            lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(
                f"result record {index} of the chunk is not JSON: {exc}"
            ) from None
    try:
        return "".join(lines).encode()
    except UnicodeEncodeError as exc:  # a lone surrogate in a string
        raise InvalidDataError(f"a result record of the chunk is not UTF-8 text: {exc}") from None


def _decode(line: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(line.decode())
    except UnicodeDecodeError as exc:
        raise InvalidDataError(f"{where}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise InvalidDataError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidDataError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data
