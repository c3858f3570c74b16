"""Metrics sink writing a run directory of plain files (adapter layer, ``os`` and ``json``).

Layout of ``run_dir`` (created if missing; an existing run directory is appended to):

* ``metrics.jsonl``: one strict-JSON object per :meth:`~FilesMetricsSink.log_metrics`
  call, ``{"step": n, ...metrics}`` with ``step`` first (no ``step`` key when the step is
  ``None``), metric keys in the order given. Non-finite floats are written as the
  strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` so every line parses with strict
  JSON readers. Each line is appended with one ``write`` of the whole line; a crash can
  lose at most the line being written, and a torn last line left by a crashed process is
  closed off with a newline before new lines are appended, so it never corrupts them.
* ``config.json``: the last :meth:`~FilesMetricsSink.log_hparams` config, pretty-printed
  with sorted keys, replaced atomically (temp file, fsync, :func:`os.replace`).
* ``texts/<name>.txt`` and ``texts/index.jsonl``: each
  :meth:`~FilesMetricsSink.log_long_text` call writes a new file atomically and appends
  ``{"key": key, "file": "texts/<name>.txt"}`` to the index. ``<name>`` is the key with
  every character outside ``A-Z a-z 0-9 . _ -`` replaced by ``_`` (so ``/`` never makes
  directories), a leading ``.`` replaced by ``_``, cut to 100 characters; when that file
  exists already (the same key logged again, or two keys that sanitise alike) the name
  gets ``.1``, ``.2`` ... before ``.txt``. Nothing is ever overwritten; the index maps
  every file back to its exact key.
* ``run_status.json``: ``{"exit_code": n}``, written atomically by
  :meth:`~FilesMetricsSink.close`.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import re
import secrets
import threading
from collections.abc import Mapping
from typing import IO, Any, cast

import numpy as np

from crucible_train.adapters._metrics_input import (
    check_hparams,
    check_metrics,
    check_open,
    check_step,
    check_text,
)
from crucible_train.errors import ConfigurationError, MetricsSinkError
from crucible_train.ports.metrics import MetricsSink, MetricValue

__all__ = ["FilesMetricsSink", "safe_text_name"]

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
STATUS_FILE = "run_status.json"
TEXTS_DIR = "texts"
TEXT_INDEX = "index.jsonl"
MAX_NAME = 100
"""Longest sanitised text name (before the ``.N.txt`` suffix); filesystems allow 255 bytes."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_REPR = 200


def safe_text_name(key: str) -> str:
    """The file name stem used for a long-text ``key`` (see the module docstring).

    Example:
        ``safe_text_name("samples/step 3:a")`` is ``"samples_step_3_a"``;
        ``safe_text_name("../x")`` is ``"_._x"``.
    """
    name = _UNSAFE.sub("_", key)[:MAX_NAME]
    if name.startswith("."):
        name = "_" + name[1:]  # no hidden files, no "." or ".."
    return name or "_"


def _encode_float(value: float) -> float | str:
    # Strict JSON has no NaN/Infinity; strings keep every line parseable everywhere.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _metric_value(value: object) -> bool | int | float | str:
    """The JSON form of a value :func:`check_metrics` accepted: a number, boolean or string."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return value
    # numbers.Integral/Real include numpy integers and floats; nothing else gets here.
    if isinstance(value, numbers.Integral):
        return int(value)
    return _encode_float(float(cast(numbers.Real, value)))


def _config_value(value: Any, depth: int = 0) -> Any:
    """The JSON form of an (already dumped) config value; tolerant of stragglers."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _encode_float(float(value))
    if depth < 100 and isinstance(value, Mapping):
        return {str(k): _config_value(v, depth + 1) for k, v in value.items()}
    if depth < 100 and isinstance(value, list | tuple):
        return [_config_value(v, depth + 1) for v in value]
    # The port asks for JSON-safe configs (crucible_train.core.config_dump.dump_config);
    # anything else is kept as a short repr rather than losing the whole config.
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _exit_code(value: object) -> int | str:
    # The port types it int; keep whatever a careless caller passed rather than fail close.
    if isinstance(value, numbers.Integral):
        return int(value)
    return repr(value)


def _fsync_directory(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms that cannot open directories
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def _write_atomic(path: str, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    directory = os.path.dirname(path)
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not overwrite and os.path.lexists(path):
            raise FileExistsError(path)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _append_line(handle: IO[bytes], line: bytes) -> None:
    """Append one whole line: a single unbuffered write (repeated only if the OS wrote less)."""
    view = memoryview(line)
    while view:
        view = view[handle.write(view) :]
    handle.flush()


def _open_append(path: str) -> IO[bytes]:
    """Open ``path`` for appending; close off a torn last line left by a crash."""
    handle: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the run
    try:
        if handle.tell() > 0:
            with open(path, "rb") as reader:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    _append_line(handle, b"\n")
    except BaseException:
        handle.close()
        raise
    return handle


class FilesMetricsSink(MetricsSink):
    """Writes metrics, config, long texts and the exit code under one run directory.

    Args:
        run_dir: absolute directory of the run; created (with parents) if missing.
            The container resolves ``metrics.run_dir`` from ``containers.yaml``, so a
            relative path here is a wiring bug and is refused.

    Raises:
        ConfigurationError: ``run_dir`` is empty, relative, or cannot be created.

    ``get_url`` returns ``None`` (a local directory is not a URL, and a multiplexer
    returns the first URL, which should be a tracking service's). ``sync`` fsyncs the open
    files. Safe to call from several threads (one lock serialises writes).
    """

    def __init__(self, *, run_dir: str) -> None:
        if not isinstance(run_dir, str) or not run_dir:
            raise ConfigurationError("FilesMetricsSink run_dir must be a non-empty absolute path")
        if not os.path.isabs(run_dir):
            raise ConfigurationError(
                f"FilesMetricsSink run_dir {run_dir!r} is relative; pass an absolute path "
                "(the container resolves metrics.run_dir against the start directory)"
            )
        self._run_dir = os.path.normpath(run_dir)
        try:
            os.makedirs(self._run_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"FilesMetricsSink cannot create run_dir {self._run_dir}: {exc.strerror or exc}"
            ) from exc
        self._lock = threading.Lock()
        self._metrics: IO[bytes] | None = None
        self._index: IO[bytes] | None = None
        self._closed = False

    @property
    def run_dir(self) -> str:
        """The absolute run directory."""
        return self._run_dir

    def __repr__(self) -> str:
        return f"FilesMetricsSink(run_dir={self._run_dir!r})"

    def _path(self, *parts: str) -> str:
        return os.path.join(self._run_dir, *parts)

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        """Replace ``config.json`` atomically with ``config`` (pretty, keys sorted).

        ``config`` should come from :func:`crucible_train.core.config_dump.dump_config`
        (which also redacts secrets); values that are still not JSON are written as
        their ``repr``. Non-finite floats become ``"NaN"``/``"Infinity"``/``"-Infinity"``.

        Raises:
            MetricsSinkError: ``config`` is not a mapping, the sink is closed, or the
                file cannot be written (the previous ``config.json`` is then intact).
        """
        with self._lock:
            check_open(self._closed, "log_hparams")
            valid = check_hparams(config)
            text = json.dumps(
                _config_value(valid), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
            )
            try:
                _write_atomic(self._path(CONFIG_FILE), (text + "\n").encode("utf-8"))
            except OSError as exc:
                raise MetricsSinkError(
                    f"cannot write {self._path(CONFIG_FILE)}: {exc.strerror or exc}"
                ) from exc

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        """Append one line ``{"step": step, **metrics}`` to ``metrics.jsonl``.

        Raises:
            MetricsSinkError: invalid ``step`` (negative, not a whole number), a metric
                name that is not a string or is ``"step"`` while ``step`` is given, a
                value that is not a number, boolean or string (the message names the
                key), a closed sink, or a failed write.
        """
        with self._lock:
            check_open(self._closed, "log_metrics")
            checked = check_step(step)
            valid = check_metrics(metrics, "use a number, a boolean or a string")
            if checked is not None and "step" in valid:
                raise MetricsSinkError(
                    "metric name 'step' collides with the step column; rename the metric"
                )
            row: dict[str, Any] = {} if checked is None else {"step": checked}
            row.update((key, _metric_value(value)) for key, value in valid.items())
            line = json.dumps(row, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            try:
                if self._metrics is None:
                    self._metrics = _open_append(self._path(METRICS_FILE))
                _append_line(self._metrics, (line + "\n").encode("utf-8"))
            except OSError as exc:
                raise MetricsSinkError(
                    f"cannot append to {self._path(METRICS_FILE)}: {exc.strerror or exc}"
                ) from exc

    def log_long_text(self, key: str, text: str) -> None:
        """Write ``text`` to a new ``texts/<name>.txt`` and record it in ``texts/index.jsonl``.

        Raises:
            MetricsSinkError: ``key`` or ``text`` is not a string, the sink is closed, or
                a write failed.
        """
        with self._lock:
            check_open(self._closed, "log_long_text")
            check_text(key, text)
            directory = self._path(TEXTS_DIR)
            stem = safe_text_name(key)
            try:
                os.makedirs(directory, exist_ok=True)
                name = self._write_new_text(directory, stem, text.encode("utf-8"))
                if self._index is None:
                    self._index = _open_append(os.path.join(directory, TEXT_INDEX))
                entry = {"key": key, "file": f"{TEXTS_DIR}/{name}"}
                line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
                _append_line(self._index, (line + "\n").encode("utf-8"))
            except OSError as exc:
                raise MetricsSinkError(
                    f"cannot write long text {key!r} under {directory}: {exc.strerror or exc}"
                ) from exc

    @staticmethod
    def _write_new_text(directory: str, stem: str, data: bytes) -> str:
        for attempt in range(100_000):
            name = f"{stem}.txt" if attempt == 0 else f"{stem}.{attempt}.txt"
            path = os.path.join(directory, name)
            if os.path.lexists(path):
                continue
            try:
                _write_atomic(path, data, overwrite=False)
            except FileExistsError:
                continue  # appeared meanwhile (another process): take the next number
            return name
        raise OSError(f"too many texts named {stem!r}")

    def sync(self) -> None:
        """Flush the open files to disk (fsync). Works after close too (nothing to do)."""
        with self._lock:
            for handle in (self._metrics, self._index):
                if handle is not None and not handle.closed:
                    try:
                        os.fsync(handle.fileno())
                    except OSError as exc:
                        raise MetricsSinkError(
                            f"cannot sync files under {self._run_dir}: {exc.strerror or exc}"
                        ) from exc

    def get_url(self) -> str | None:
        """``None``: see the class docstring."""
        return None

    def close(self, exit_code: int = 0) -> None:
        """Record ``{"exit_code": exit_code}`` in ``run_status.json``, fsync and close files.

        Idempotent: only the first call writes. Later ``log_*`` calls raise.

        Raises:
            MetricsSinkError: ``run_status.json`` could not be written (files are still
                closed).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            failure: OSError | None = None
            for handle in (self._metrics, self._index):
                if handle is None:
                    continue
                try:
                    os.fsync(handle.fileno())
                except OSError as exc:
                    failure = failure or exc
                finally:
                    handle.close()
            self._metrics = self._index = None
            status = json.dumps({"exit_code": _exit_code(exit_code)})
            try:
                _write_atomic(self._path(STATUS_FILE), (status + "\n").encode("utf-8"))
            except OSError as exc:
                failure = failure or exc
            if failure is not None:
                raise MetricsSinkError(
                    f"closing the run files under {self._run_dir} failed: "
                    f"{failure.strerror or failure}"
                ) from failure
