"""ConsoleMetricsSink: tables captured from a rich Console writing to a StringIO."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from rich.console import Console

from crucible_train.adapters.console.metrics_sink import (
    MAX_TEXT,
    ConsoleMetricsSink,
    format_value,
)
from crucible_train.errors import ConfigurationError, MetricsSinkError
from crucible_train.ports.metrics import MetricsSink


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def sink(out: io.StringIO) -> ConsoleMetricsSink:
    return ConsoleMetricsSink(console=Console(file=out, width=120))


def _rows(text: str) -> list[tuple[str, str]]:
    """(metric, value) pairs of the table body lines in ``text``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows.append((cells[0], cells[1]))
    return rows


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (12345, "12345"),
        (-7, "-7"),
        (np.int64(3), "3"),
        (0.123456, "0.1235"),
        (2.0, "2"),
        (1e-5, "1e-05"),
        (123456.0, "1.235e+05"),
        (np.float32(0.5), "0.5"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (True, "true"),
        (False, "false"),
        (np.bool_(False), "false"),
        ("warmup", "warmup"),
    ],
)
def test_format_value(value, shown):
    assert format_value(value) == shown


def test_format_value_refuses_other_types():
    with pytest.raises(MetricsSinkError):
        format_value([1])


def test_is_a_metrics_sink(sink):
    assert isinstance(sink, MetricsSink)
    assert sink.get_url() is None


def test_table_per_step_with_title_and_columns(sink, out):
    sink.log_metrics({"loss": 0.25, "tokens": 12345, "done": False}, step=3)
    text = out.getvalue()
    assert "Step 3" in text
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == ["Metric", "Value"]
    assert _rows(text) == [("loss", "0.25"), ("tokens", "12345"), ("done", "false")]


def test_step_none_is_titled_metrics(sink, out):
    sink.log_metrics({"loss": 1.0})
    assert "Metrics" in out.getvalue()
    assert "Step" not in out.getvalue()


def test_row_order_is_first_seen_across_the_run(sink, out):
    sink.log_metrics({"zeta": 1, "alpha": 2}, step=0)
    out.truncate(0)
    out.seek(0)
    sink.log_metrics({"beta": 3, "alpha": 4, "zeta": 5}, step=1)
    # zeta and alpha keep their places; beta, new, comes last (not re-sorted).
    assert [name for name, _ in _rows(out.getvalue())] == ["zeta", "alpha", "beta"]


def test_every_prints_every_nth_call_but_remembers_order(out):
    sink = ConsoleMetricsSink(every=3, console=Console(file=out, width=120))
    for step in range(7):
        sink.log_metrics({f"m{step}": step, "loss": 1.0}, step=step)
    text = out.getvalue()
    assert [line.strip() for line in text.splitlines() if "Step" in line] == [
        "Step 0",
        "Step 3",
        "Step 6",
    ]
    assert [name for name, _ in _rows(text.split("Step 6")[1])] == ["loss", "m6"]


def test_markup_in_names_and_values_is_printed_verbatim(sink, out):
    sink.log_metrics({"[bold]x[/bold]": "[red]warm[/red]"}, step=0)
    assert _rows(out.getvalue()) == [("[bold]x[/bold]", "[red]warm[/red]")]


def test_invalid_calls_are_refused_and_print_nothing(sink, out):
    with pytest.raises(MetricsSinkError, match="metric 'bad' is a list"):
        sink.log_metrics({"ok": 1, "bad": [1]}, step=0)
    with pytest.raises(MetricsSinkError, match="name"):
        sink.log_metrics({1: 0.5})
    with pytest.raises(MetricsSinkError, match="step"):
        sink.log_metrics({"a": 1}, step=-1)
    assert out.getvalue() == ""


def test_hparams_are_key_value_lines_with_long_values_shortened(sink, out):
    sink.log_hparams(
        {"lr": 0.0001, "model": {"name": "tiny", "layers": 2}, "notes": "n" * 300, "x": None}
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "Hyperparameters"
    assert lines[1:4] == ["  lr = 0.0001", "  model.name = tiny", "  model.layers = 2"]
    notes = lines[4]
    assert notes.startswith("  notes = nnn")
    assert " ... " in notes
    assert len(notes) < 100
    assert lines[5] == "  x = null"


def test_long_text_is_printed_and_cut(sink, out):
    sink.log_long_text("sample/0", "line one\nline two")
    assert out.getvalue() == "sample/0\nline one\nline two\n"
    out.truncate(0)
    out.seek(0)
    sink.log_long_text("big", "y" * (MAX_TEXT + 10))
    assert "(10 more characters)" in out.getvalue()


def test_close_is_idempotent_and_silent(sink, out):
    sink.close(1)
    sink.close()
    sink.sync()
    assert out.getvalue() == ""
    with pytest.raises(MetricsSinkError, match="close"):
        sink.log_metrics({"a": 1}, step=0)


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"every": True}, {"width": 0}, {"width": 1.5}])
def test_invalid_settings(kwargs):
    with pytest.raises(ConfigurationError, match="ConsoleMetricsSink"):
        ConsoleMetricsSink(**kwargs)


def test_default_console_writes_to_stderr(capsys):
    sink = ConsoleMetricsSink(width=80)
    sink.log_metrics({"loss": 0.5}, step=1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Step 1" in captured.err
    assert "loss" in captured.err
