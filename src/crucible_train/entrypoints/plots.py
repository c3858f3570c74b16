"""PNG plots of a run's main curves, drawn from its ``metrics.jsonl`` (entry-point layer).

One PNG per curve family that the run logged (counters such as ``num_loss_tokens`` and
``.../weight`` are left out), written to ``RUN_DIR/plots/<family>.png``
atomically (temporary file, then :func:`os.replace`):

* ``loss``: every metric whose name contains ``loss`` or ``nll``;
* ``accuracy``: names containing ``accuracy``;
* ``reward``: names containing ``reward``;
* ``dpo``: names starting ``dpo/`` (margins, chosen/rejected rewards, ...);
* ``kl``: names containing ``kl`` (``teacher_kl`` of distill, the RL sampler KLs).

matplotlib (extra ``local``) is imported only when plotting, and only its object-oriented
API with the Agg canvas is used, so no window or global pyplot state is involved.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crucible_train.errors import ConfigurationError

__all__ = ["FAMILIES", "PLOTS_DIR", "read_curves", "write_plots"]

PLOTS_DIR = "plots"
_INSTALL_HINT = (
    "plots need matplotlib: pip install matplotlib (or the `local` extra: "
    'pip install -e ".[local]")'
)


def _is_dpo(name: str) -> bool:
    return name.startswith("dpo/") or "/dpo/" in name


FAMILIES: dict[str, Callable[[str], bool]] = {
    "loss": lambda name: ("loss" in name or "nll" in name) and not _is_dpo(name),
    "accuracy": lambda name: "accuracy" in name and not _is_dpo(name),
    "reward": lambda name: "reward" in name and not _is_dpo(name),
    "dpo": _is_dpo,
    "kl": lambda name: "kl" in name and not _is_dpo(name),
}
"""Family name → predicate on metric names. A metric may belong to several families."""


def read_curves(metrics_file: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """Metric name → ``(step, value)`` points from a ``metrics.jsonl`` file.

    Rows without an integer ``step``, non-numeric and non-finite values, and torn lines
    are skipped; a later row for the same step replaces an earlier one.
    """
    path = Path(metrics_file)
    if not path.exists():
        return {}
    curves: dict[str, dict[int, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        for name, value in row.items():
            if name == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                curves.setdefault(str(name), {})[step] = float(value)
    return {name: sorted(points.items()) for name, points in sorted(curves.items())}


def _is_count(name: str) -> bool:
    """Counters and weights logged next to a metric (``num_loss_tokens``, ``test/nll/weight``)."""
    last = name.rsplit("/", 1)[-1]
    return last == "weight" or last.startswith("num_")


def _families(names: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for family, matches in FAMILIES.items():
        members = [name for name in names if matches(name) and not _is_count(name)]
        if members:
            out[family] = members
    return out


def _load_matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigurationError(_INSTALL_HINT) from None
    return Figure, FigureCanvasAgg


def _save_atomically(figure: Any, canvas_class: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        canvas_class(figure).print_png(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_plots(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Plot every curve family present in ``RUN_DIR/metrics.jsonl``.

    Returns:
        The PNG files written (none when the run logged nothing plottable).

    Raises:
        ConfigurationError: matplotlib is not installed (the message says how to get it).
    """
    directory = Path(run_dir)
    curves = read_curves(directory / "metrics.jsonl")
    families = _families(list(curves))
    if not families:
        return []
    figure_class, canvas_class = _load_matplotlib()
    written: list[Path] = []
    for family, names in families.items():
        figure = figure_class(figsize=(7.0, 4.0), dpi=100)
        axes = figure.add_subplot(1, 1, 1)
        for name in names:
            steps = [step for step, _ in curves[name]]
            values = [value for _, value in curves[name]]
            axes.plot(steps, values, marker="." if len(steps) < 50 else None, label=name)
        axes.set_xlabel("step")
        axes.set_title(f"{directory.name}: {family}")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        target = directory / PLOTS_DIR / f"{family}.png"
        _save_atomically(figure, canvas_class, target)
        written.append(target)
    return written
