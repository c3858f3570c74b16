"""Training progress on a console: a live bar on a terminal, plain lines otherwise.

:class:`ConsoleProgress` is the ``train`` command's
:class:`~crucible_train.core.training.progress.Progress`: the loop reports steps and
metrics to it, and the command's own notes (run directory, start-from-SFT choice,
Ctrl-C) go through :meth:`ConsoleProgress.note`, so they print above a live bar.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar

__all__ = ["ConsoleProgress", "format_duration", "headline"]

_MAIN_METRICS = ("nll", "loss", "reward", "accuracy", "kl", "margin")


def headline(metrics: Mapping[str, float], limit: int = 4) -> str:
    """A few main metrics as ``name=value`` (losses, rewards, accuracies, KL first)."""
    candidates = [
        name
        for name in metrics
        if any(word in name for word in _MAIN_METRICS)
        and not name.endswith("/weight")
        and not name.startswith("num_")
    ]
    ranked = sorted(
        candidates,
        key=lambda name: next(i for i, w in enumerate(_MAIN_METRICS) if w in name),
    )
    shown = ranked[:limit]
    if "lr" in metrics and len(shown) < limit:
        shown.append("lr")
    return " ".join(f"{name}={metrics[name]:.4g}" for name in shown)


def format_duration(seconds: float) -> str:
    """``M:SS`` or ``H:MM:SS``; ``?`` for an unknown (infinite) duration."""
    if not math.isfinite(seconds):
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConsoleProgress:
    """:class:`~crucible_train.core.training.progress.Progress` on a console.

    On a terminal: a live rich bar with steps, elapsed time, ETA and the latest main
    metrics. Otherwise (a log file, CI): a plain line at the start, then at most one every
    ``every_s`` seconds, and one for the last step.

    Args:
        stream: where to write (stderr by default).
        is_terminal: force the terminal or plain mode (default: ask the stream).
        every_s: plain mode: seconds between progress lines.
        clock: monotonic clock in seconds (tests pass a fake).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        is_terminal: bool | None = None,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._console = Console(file=self._stream, force_terminal=is_terminal)
        self._live = self._console.is_terminal if is_terminal is None else is_terminal
        self._every_s = every_s
        self._clock = clock
        self._bar: RichBar | None = None
        self._task: Any = None
        self._total = 0
        self._first = 0
        self._started = 0.0
        self._last_line = -math.inf
        self._description = ""

    def start(self, total_steps: int, first_step: int, description: str) -> None:
        """Show the bar (or the first plain line)."""
        self._total, self._first, self._description = total_steps, first_step, description
        self._started = self._clock()
        if self._live:
            self._bar = RichBar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                description, total=total_steps, completed=first_step, metrics=""
            )
        else:
            where = f" from step {first_step}" if first_step else ""
            self._print(f"{description}: {total_steps} steps{where}")
            self._last_line = self._started

    def advance(self, step: int, metrics: Mapping[str, float]) -> None:
        """Update the bar (or print a plain line when one is due)."""
        done = step + 1
        if self._bar is not None:
            self._bar.update(self._task, completed=done, metrics=headline(metrics))
            return
        now = self._clock()
        if done < self._total and now - self._last_line < self._every_s:
            return
        self._last_line = now
        rate = (done - self._first) / (now - self._started) if now > self._started else 0.0
        eta = (self._total - done) / rate if rate > 0 else math.inf
        percent = 100.0 * done / self._total if self._total else 100.0
        self._print(
            f"{self._description} step {done}/{self._total} ({percent:.0f}%) "
            f"elapsed {format_duration(now - self._started)} eta {format_duration(eta)} "
            f"{headline(metrics)}".rstrip()
        )

    def note(self, message: str) -> None:
        """Print ``message`` (above the bar on a terminal)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            self._print(message)

    def finish(self) -> None:
        """Remove the live display (the last state stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _print(self, line: str) -> None:
        print(line, file=self._stream, flush=True)
