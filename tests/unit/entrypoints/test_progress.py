"""The console progress display of ``train``: plain lines off a terminal, a bar on one."""

from __future__ import annotations

import io

from crucible_train.entrypoints.progress import ConsoleProgress


def test_progress_on_a_non_terminal_prints_occasional_plain_lines() -> None:
    stream = io.StringIO()
    now = [100.0]
    progress = ConsoleProgress(stream, is_terminal=False, every_s=10.0, clock=lambda: now[0])
    progress.start(total_steps=100, first_step=20, description="sft")
    for step in range(20, 100):
        now[0] += 1.0
        progress.advance(step, {"train/nll": 2.5, "num_tokens": 9.0, "lr": 0.001})
    progress.note("saved checkpoint")
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sft: 100 steps from step 20"
    assert lines[1] == "sft step 30/100 (30%) elapsed 0:10 eta 1:10 train/nll=2.5 lr=0.001"
    assert lines[-2].startswith("sft step 100/100 (100%) elapsed 1:20 eta 0:00")
    assert lines[-1] == "saved checkpoint"
    assert len(lines) == 1 + 8 + 1  # start, one line per 10 s (the last step's too), the note
    assert "\x1b[" not in stream.getvalue()


def test_progress_on_a_terminal_draws_a_bar_with_metrics() -> None:
    stream = io.StringIO()
    progress = ConsoleProgress(stream, is_terminal=True)
    progress.start(total_steps=4, first_step=0, description="sft")
    for step in range(4):
        progress.advance(step, {"train/nll": 1.25})
    progress.finish()
    text = stream.getvalue()
    assert "4/4" in text
    assert "train/nll=1.25" in text
