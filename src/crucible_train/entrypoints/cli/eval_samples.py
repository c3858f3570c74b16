"""The samples file of ``crucible-train eval``: read lazily, malformed lines counted.

Each non-blank line is a JSON object ``{"id", "input"?, "output"?, "target"}`` (see
:class:`~crucible_train.core.evaluation.EvalSample`); a line that is not one becomes an
error result named ``<line N>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from crucible_train.core.evaluation import EvalResult, EvalSample, repeat_sample
from crucible_train.errors import InvalidDataError

__all__ = ["SampleReader", "count_lines", "file_blocks"]


class SampleReader:
    """Reads the samples file lazily and remembers which positions were malformed.

    Every non-blank line yields one item (``num_samples`` copies of a sample still to be
    answered, see :func:`~crucible_train.core.evaluation.repeat_sample`), and the reader
    remembers the position of each malformed one, so the runner's ``<index N>`` ids map
    back to line numbers. A malformed line yields an empty mapping, which the runner turns
    into an error result; :meth:`fix` then gives it the line number and the real reason.

    Args:
        path: the samples JSONL file.
        strict: raise at the first malformed line instead.
        report: prints a warning for a malformed line.
        num_samples: copies of each sample without an output.
    """

    def __init__(
        self,
        path: Path,
        *,
        strict: bool,
        report: Callable[[str], None],
        num_samples: int = 1,
    ) -> None:
        self._path = path
        self._strict = strict
        self._num_samples = num_samples
        self._report = report
        self.malformed: dict[int, tuple[int, str]] = {}  # index → (line number, reason)

    def __iter__(self) -> Iterator[EvalSample | Mapping[str, Any]]:
        index = 0
        with open(self._path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw.decode("utf-8"))
                    if not isinstance(data, dict):
                        raise InvalidDataError(f"expected a JSON object, got {type(data).__name__}")
                    sample: EvalSample | Mapping[str, Any] = EvalSample.from_mapping(data)
                except (ValueError, InvalidDataError) as exc:  # JSON and UTF-8 errors too
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if self._strict:
                        raise InvalidDataError(
                            f"{self._path}:{number}: malformed sample line: {reason} "
                            "(stopped by --strict)"
                        ) from None
                    self.malformed[index] = (number, reason)
                    self._report(
                        f"warning: {self._path}:{number}: malformed sample line "
                        f"counted as an error: {reason}"
                    )
                    yield {}
                    index += 1
                    continue
                assert isinstance(sample, EvalSample)
                # Only answers still to generate are repeated; a given output is scored once.
                count = self._num_samples if sample.output is None else 1
                for copy in repeat_sample(sample, count):
                    yield copy
                    index += 1

    def fix(self, result: EvalResult) -> EvalResult:
        """Rename the runner's ``<index N>`` result of a malformed line to ``<line L>``."""
        if not (result.id.startswith("<index ") and result.id.endswith(">")):
            return result
        index = int(result.id[len("<index ") : -1])
        if index not in self.malformed:
            return result
        number, reason = self.malformed.pop(index)
        return EvalResult(id=f"<line {number}>", error=f"malformed sample line {number}: {reason}")


def file_blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes, 1 MiB at a time (for the run fingerprint, in flat memory)."""
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


def count_lines(path: Path) -> int:
    """Non-blank lines, counted by a cheap byte scan (no JSON parsing)."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
