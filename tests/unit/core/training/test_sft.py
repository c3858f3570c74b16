"""The SFT loop against a recording fake TrainingClient: pipelining, checkpoints, resume.

A "run directory" is a :class:`RunDir`: the fake run store (whose metrics sink it rewinds)
and the training states the fake client saved, all kept from a killed run to the run that
resumes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest

from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.sft import SftLoopConfig, run_sft
from crucible_train.errors import ConfigurationError, TrainingClientError
from crucible_train.ports.metrics import MetricValue
from crucible_train.types import (
    Datum,
    EncodedTextChunk,
    ModelInput,
    TensorData,
)

from fakes import FakeMetricsSink, FakeRunStore, FakeTrainingClient, FakeTrainingState


class _Killed(BaseException):
    """Stands in for SIGKILL: escapes the loop without any cleanup code running."""


def _nll_half(datum: Datum) -> npt.NDArray[np.float32]:
    """The logprobs the training fake reports: -0.5 everywhere (so train/nll is 0.5)."""
    return np.full(datum.model_input.length, -0.5, np.float32)


def _observe(
    store: FakeRunStore, events: list[str], on_row: Callable[[int], None] | None = None
) -> Callable[[int | None, Mapping[str, MetricValue]], None]:
    """A sink hook: notes ``metrics:<step>`` in ``events`` for each training row, checks the
    checkpoint invariant and can kill or stop the run (``on_row``) before the row is kept.

    At each logged row of step ``s``, every checkpoint record must name a step ``<= s``
    (a record for step ``k`` may only exist once rows ``< k`` are logged).
    """
    log = CheckpointLog(store)

    def observe(step: int | None, metrics: Mapping[str, MetricValue]) -> None:
        assert step is not None
        if "train/nll" in metrics:
            events.append(f"metrics:{step}")
            for record in log.records():
                assert record.step <= step, (record, step)
            if on_row is not None:
                on_row(step)

    return observe


def _datums(n: int) -> list[Datum]:
    """Datum ``i`` starts with token ``i`` so the fake can tell which ones it trained on."""
    return [
        Datum(
            model_input=ModelInput(chunks=(EncodedTextChunk(tokens=(i, 500, 501)),)),
            loss_fn_inputs={
                "target_tokens": TensorData.from_numpy(np.array([500, 501, 502], np.int64)),
                "weights": TensorData.from_numpy(np.array([0, 1, 1], np.float32)),
            },
        )
        for i in range(n)
    ]


# 10 datums, batch 3 -> 3 batches per epoch, 3 epochs -> 9 steps; records at 2, 4, 6, 8.
CONFIG = SftLoopConfig(
    batch_size=3,
    num_epochs=3,
    max_steps=None,
    save_every=2,
    warmup_steps=2,
    learning_rate=1e-3,
)
TIME_KEYS = ("train/tokens_per_s",)


@attrs.define
class RunDir:
    """One run's metric rows and store (in memory) and its training states."""

    store: FakeRunStore = attrs.Factory(FakeRunStore)
    states: dict[str, FakeTrainingState] = attrs.Factory(dict)

    @property
    def metrics(self) -> FakeMetricsSink:
        return self.store.metrics


def _rows(run: RunDir) -> list[dict[str, Any]]:
    return [
        {"step": step}
        | {k: v for k, v in row.items() if k not in TIME_KEYS and not k.startswith("time/")}
        for step, row in run.metrics.rows
    ]


def _run(
    run: RunDir,
    *,
    resume: bool = False,
    on_row: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    config: SftLoopConfig = CONFIG,
) -> tuple[FakeTrainingClient, Any]:
    events: list[str] = []
    client = FakeTrainingClient(states=run.states, events=events, logprobs=_nll_half)
    run.metrics.on_metrics = _observe(run.store, events, on_row)
    result = run_sft(
        config,
        training=client,
        train_datums=_datums(10),
        metrics=run.metrics,
        run_store=run.store,
        stop=stop,
        resume=resume,
    )
    return client, result


# --- tests ------------------------------------------------------------------------------


def test_forward_backward_of_the_next_step_is_submitted_before_results_are_awaited() -> None:
    client, result = _run(RunDir())
    events = client.events
    assert result.steps_done == result.total_steps == 9
    for step in range(8):
        # Step N+1 is queued before the loop waits for step N's results.
        assert events.index(f"fb:{step + 1}") < events.index(f"await fb:{step}")
        assert events.index(f"optim:{step}") < events.index(f"await fb:{step}")
        assert events.index(f"await optim:{step}") < events.index(f"metrics:{step}")


def test_periodic_save_is_queued_right_after_its_step_and_the_record_names_the_next_step() -> None:
    run = RunDir()
    client, _ = _run(run)
    events = client.events
    for nxt in (2, 4, 6, 8):
        name = f"{nxt:06d}"
        at = events.index(f"save_state:{name}")
        # Saved after optim of step nxt-1 and before anything of step nxt is queued.
        assert events[at - 1] == f"optim:{nxt - 1}"
        assert events.index(f"fb:{nxt}") > at
    records = run.store.records
    assert [(r.name, r.step, r.epoch, r.batch) for r in records] == [
        ("000002", 2, 0, 2),
        ("000004", 4, 1, 1),
        ("000006", 6, 2, 0),
        ("000008", 8, 2, 2),
        ("final", 9, 3, 0),
    ]
    state = run.states[records[1].state_path or ""]
    assert len(state.trained) == 4  # exactly "after step 3"
    assert records[0].sampler_path == "sampler://000002/2"  # saved after 2 steps
    assert records[-1].final
    assert records[-1].sampler_path == "sampler://final/9"


def test_record_is_appended_only_after_its_save_completed_and_earlier_metrics() -> None:
    events: list[str] = []
    client = FakeTrainingClient(events=events, logprobs=_nll_half)
    store = FakeRunStore(events=events)
    store.metrics.on_metrics = _observe(store, events)
    run_sft(
        CONFIG, training=client, train_datums=_datums(10), metrics=store.metrics, run_store=store
    )
    appended = [(r.name, events[: events.index(f"record:{r.name}")]) for r in store.records]
    for name, before in appended[:-1]:
        step = int(name)
        assert f"await save_state:{name}" in before
        assert f"await sampler:{name}" in before
        assert all(f"metrics:{s}" in before for s in range(step))
    name, before = appended[-1]
    assert name == "final"
    assert "await save_state:final" in before


@pytest.mark.parametrize("kill_at", [1, 3, 4, 5, 8])
def test_resume_after_a_kill_matches_an_uninterrupted_run(kill_at: int) -> None:
    reference = RunDir()
    trained, _ = _run(reference)

    def kill(step: int) -> None:
        if step == kill_at:
            raise _Killed

    run = RunDir()
    with pytest.raises(_Killed):
        _run(run, on_row=kill)
    last = CheckpointLog(run.store).last_resumable()
    client, result = _run(run, resume=True)

    expected_start = last.step if last is not None else 0
    assert result.resumed_from == (expected_start if last is not None else None)
    if last is not None:
        assert f"load_state:{last.state_path}" in client.events
        # The first batch trained after resuming is the recorded (epoch, batch).
        assert client.events.index(f"await load_state:{last.state_path}") < client.events.index(
            "fb:0"
        )
    assert client.trained == trained.trained
    assert client.lrs == trained.lrs
    assert _rows(run) == _rows(reference)
    assert run.store.records[-1].final


def test_resume_truncates_metric_rows_of_steps_it_reruns() -> None:
    def kill(step: int) -> None:
        if step == 5:
            raise _Killed

    run = RunDir()
    with pytest.raises(_Killed):
        _run(run, on_row=kill)
    steps = [row["step"] for row in _rows(run)]
    assert steps == [0, 1, 2, 3, 4]  # row 5 was never written
    # Resume from record 000004: rows of step 4 are dropped and logged again.
    client, result = _run(run, resume=True)
    assert result.resumed_from == 4
    assert run.store.rewinds == [4]
    assert len(client.trained) == 9
    assert [row["step"] for row in _rows(run)] == list(range(9))


def test_stop_event_saves_an_interrupted_checkpoint_and_resume_finishes() -> None:
    reference = RunDir()
    trained, _ = _run(reference)
    stop = threading.Event()

    def interrupt(step: int) -> None:
        if step == 4:
            stop.set()

    run = RunDir()
    client, result = _run(run, on_row=interrupt, stop=stop)
    assert result.interrupted
    # Step 5 was already queued when step 4's metrics were logged; both are finished.
    assert result.steps_done == 6
    assert result.final_record is not None
    assert result.final_record.name == "interrupted-000006"
    last = run.store.records[-1]
    assert (last.name, last.step, last.epoch, last.batch) == ("interrupted-000006", 6, 2, 0)
    assert not last.final
    assert len(client.trained) == 6

    client, result = _run(run, resume=True)
    assert result.resumed_from == 6
    assert not result.interrupted
    assert client.trained == trained.trained
    assert _rows(run) == _rows(reference)


def test_resume_of_a_finished_run_does_nothing() -> None:
    run = RunDir()
    _run(run)
    client, result = _run(run, resume=True)
    assert client.trained == []
    assert not result.interrupted
    assert result.final_record is not None
    assert result.final_record.final
    assert run.store.rewinds == []


def test_resume_without_a_record_starts_afresh_and_drops_stale_rows() -> None:
    def kill(step: int) -> None:
        if step == 1:
            raise _Killed

    run = RunDir()
    with pytest.raises(_Killed):
        _run(run, on_row=kill)
    assert CheckpointLog(run.store).last_resumable() is None
    client, result = _run(run, resume=True)
    assert result.resumed_from is None
    assert run.store.rewinds == [0]
    assert len(client.trained) == 9
    assert [row["step"] for row in _rows(run)] == list(range(9))


def test_max_steps_caps_the_run_and_the_schedule() -> None:
    config = SftLoopConfig(batch_size=3, num_epochs=3, max_steps=4, save_every=0, warmup_steps=0)
    run = RunDir()
    client, result = _run(run, config=config)
    assert result.total_steps == 4
    assert len(client.trained) == 4
    assert client.lrs[0] == pytest.approx(config.learning_rate)
    assert client.lrs == sorted(client.lrs, reverse=True)  # linear decay
    assert [r.name for r in run.store.records] == ["final"]


def test_batches_are_a_seeded_shuffle_per_epoch_without_repeats() -> None:
    client, _ = _run(RunDir())
    epochs = [[i for batch in client.trained[e * 3 : e * 3 + 3] for i in batch] for e in range(3)]
    assert all(len(set(ids)) == 9 for ids in epochs)
    assert epochs[0] != epochs[1]


def test_batch_size_larger_than_the_data_names_both_numbers() -> None:
    with pytest.raises(ConfigurationError, match=r"batch_size 64 .*\(10 examples\)"):
        _run(RunDir(), config=SftLoopConfig(batch_size=64))


def test_empty_training_set_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="training set is empty"):
        run_sft(
            CONFIG,
            training=FakeTrainingClient(),
            train_datums=[],
            metrics=FakeMetricsSink(),
            run_store=FakeRunStore(),
        )


def test_train_metrics_have_the_documented_names() -> None:
    run = RunDir()
    client, _ = _run(run)
    row = _rows(run)[0]
    assert row["train/nll"] == pytest.approx(0.5)
    for key in ("lr", "epoch", "progress", "num_sequences", "num_tokens", "num_loss_tokens"):
        assert key in row
    assert row["optim/grad_norm"] == pytest.approx(client.grad_norms[0])


@pytest.mark.parametrize("fail_at", [3, 5, 7])
def test_a_backend_failure_surfaces_typed_and_leaves_a_resumable_record(fail_at: int) -> None:
    reference = RunDir()
    trained, _ = _run(reference)
    run = RunDir()
    with pytest.raises(TrainingClientError, match="went away"):
        run_sft(
            CONFIG,
            training=FakeTrainingClient(
                states=run.states,
                logprobs=_nll_half,
                fail_from=fail_at,
                failure="server at 127.0.0.1:1 went away",
            ),
            train_datums=_datums(10),
            metrics=run.metrics,
            run_store=run.store,
        )
    last = CheckpointLog(run.store).last_resumable()
    assert last is not None
    assert last.step <= fail_at  # never a record for a step whose state is unknown
    client, result = _run(run, resume=True)
    assert result.resumed_from == last.step
    assert client.trained == trained.trained
    assert _rows(run) == _rows(reference)
