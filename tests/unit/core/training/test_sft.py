"""The SFT loop against a recording fake TrainingClient: pipelining, checkpoints, resume.

A "run directory" is a :class:`RunDir`: a recording metrics sink and a fake run store that
rewinds its rows, both kept from a killed run to the run that resumes it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from crucible_train.core.training.checkpoints import CheckpointLog
from crucible_train.core.training.sft import SftLoopConfig, run_sft
from crucible_train.errors import ConfigurationError, TrainingClientError
from crucible_train.ports.metrics import MetricsSink, MetricValue
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import (
    AdamParams,
    Datum,
    EncodedTextChunk,
    ForwardBackwardOutput,
    ModelInput,
    OptimStepResponse,
    TensorData,
)

from fakes import FakeRunStore, RecordingMetricsSink

# --- fakes ------------------------------------------------------------------------------


class _Awaited(Future[Any]):
    """A resolved future that records in ``events`` when its result is asked for."""

    def __init__(self, events: list[str], label: str, value: Any) -> None:
        super().__init__()
        self._events = events
        self._label = label
        self.set_result(value)

    def result(self, timeout: float | None = None) -> Any:
        self._events.append(f"await {self._label}")
        return super().result(timeout)


class FakeTrainingClient:
    """Runs every call at submission (so in submission order) and records it.

    The "weights" are the list of batches trained on (datum ids) and the learning rates;
    ``save_state`` writes them to ``state_dir`` as JSON so a new client can resume.
    """

    def __init__(self, state_dir: Path, events: list[str] | None = None) -> None:
        self.events: list[str] = [] if events is None else events
        self.state_dir = state_dir
        self.trained: list[list[int]] = []
        self.lrs: list[float] = []
        self._grad: list[int] | None = None
        self._fb = 0

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        assert loss_fn == "cross_entropy"
        label = f"fb:{self._fb}"
        self._fb += 1
        self.events.append(label)
        self._grad = [d.model_input.to_ints()[0] for d in datums]
        outputs = [
            {"logprobs": TensorData.from_numpy(np.full(d.model_input.length, -0.5, np.float32))}
            for d in datums
        ]
        return _Awaited(self.events, label, ForwardBackwardOutput(loss_fn_outputs=outputs))

    def forward(self, datums: Sequence[Datum], loss_fn: str) -> Future[ForwardBackwardOutput]:
        outputs = [
            {"logprobs": TensorData.from_numpy(np.full(d.model_input.length, -1.0, np.float32))}
            for d in datums
        ]
        self.events.append("forward")
        return _Awaited(self.events, "forward", ForwardBackwardOutput(loss_fn_outputs=outputs))

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        assert self._grad is not None, "optim_step without forward_backward"
        label = f"optim:{len(self.trained)}"
        self.events.append(label)
        self.trained.append(self._grad)
        self.lrs.append(params.learning_rate)
        self._grad = None
        return _Awaited(self.events, label, OptimStepResponse(metrics={"grad_norm": 1.0}))

    def save_state(self, name: str) -> Future[str]:
        self.events.append(f"save_state:{name}")
        path = self.state_dir / f"{name}.json"
        path.write_text(json.dumps({"trained": self.trained, "lrs": self.lrs}))
        return _Awaited(self.events, f"save_state:{name}", str(path))

    def load_state(self, path: str) -> Future[None]:
        self.events.append(f"load_state:{Path(path).name}")
        state = json.loads(Path(path).read_text())
        self.trained, self.lrs = state["trained"], state["lrs"]
        return _Awaited(self.events, "load_state", None)

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        self.events.append(f"sampler:{name}")
        return _Awaited(self.events, f"sampler:{name}", f"sampler://{name}")

    def forward_backward_custom(self, datums: Sequence[Datum], loss_fn: Any) -> Future[Any]:
        raise NotImplementedError

    def create_sampling_client(self, path: str) -> SamplingClient:
        raise NotImplementedError


class _Killed(BaseException):
    """Stands in for SIGKILL: escapes the loop without any cleanup code running."""


class ObservingSink(MetricsSink):
    """Forwards to ``inner``; checks the checkpoint invariant and can kill or stop the run.

    At each logged row of step ``s``, every checkpoint record must name a step ``<= s``
    (a record for step ``k`` may only exist once rows ``< k`` are logged).
    """

    def __init__(
        self,
        inner: MetricsSink,
        store: FakeRunStore,
        events: list[str],
        on_row: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.log = CheckpointLog(store)
        self.events = events
        self.on_row = on_row

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        assert step is not None
        if "train/nll" in metrics:
            self.events.append(f"metrics:{step}")
            for record in self.log.records():
                assert record.step <= step, (record, step)
            if self.on_row is not None:
                self.on_row(step)
        self.inner.log_metrics(metrics, step=step)

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        self.inner.log_hparams(config)

    def log_long_text(self, key: str, text: str) -> None:
        self.inner.log_long_text(key, text)

    def sync(self) -> None:
        self.inner.sync()

    def get_url(self) -> str | None:
        return None

    def close(self, exit_code: int = 0) -> None:
        self.inner.close(exit_code)


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
    """One run's metric rows and store (in memory) and its training states (``state_dir``)."""

    state_dir: Path
    store: FakeRunStore = attrs.Factory(FakeRunStore)

    @property
    def metrics(self) -> RecordingMetricsSink:
        return self.store.metrics

    @classmethod
    def at(cls, path: Path) -> RunDir:
        path.mkdir(parents=True, exist_ok=True)
        return cls(state_dir=path)


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
    client = FakeTrainingClient(run.state_dir, events)
    sink = ObservingSink(run.metrics, run.store, events, on_row)
    result = run_sft(
        config,
        training=client,
        train_datums=_datums(10),
        metrics=sink,
        run_store=run.store,
        stop=stop,
        resume=resume,
    )
    return client, result


# --- tests ------------------------------------------------------------------------------


def test_forward_backward_of_the_next_step_is_submitted_before_results_are_awaited(
    tmp_path: Path,
) -> None:
    client, result = _run(RunDir.at(tmp_path))
    events = client.events
    assert result.steps_done == result.total_steps == 9
    for step in range(8):
        # Step N+1 is queued before the loop waits for step N's results.
        assert events.index(f"fb:{step + 1}") < events.index(f"await fb:{step}")
        assert events.index(f"optim:{step}") < events.index(f"await fb:{step}")
        assert events.index(f"await optim:{step}") < events.index(f"metrics:{step}")


def test_periodic_save_is_queued_right_after_its_step_and_the_record_names_the_next_step(
    tmp_path: Path,
) -> None:
    run = RunDir.at(tmp_path)
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
    state = json.loads(Path(records[1].state_path or "").read_text())
    assert len(state["trained"]) == 4  # exactly "after step 3"
    assert records[0].sampler_path == "sampler://000002"
    assert records[-1].final
    assert records[-1].sampler_path == "sampler://final"


class _AppendWatchingStore(FakeRunStore):
    """Keeps, with each appended record, the client events that happened before it."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events
        self.appended: list[tuple[str, list[str]]] = []

    def append_checkpoint_record(self, record: Any) -> None:
        self.appended.append((record.name, list(self.events)))
        super().append_checkpoint_record(record)


def test_record_is_appended_only_after_its_save_completed_and_earlier_metrics(
    tmp_path: Path,
) -> None:
    events: list[str] = []
    client = FakeTrainingClient(tmp_path, events)
    store = _AppendWatchingStore(events)
    sink = ObservingSink(RecordingMetricsSink(), store, events)
    run_sft(CONFIG, training=client, train_datums=_datums(10), metrics=sink, run_store=store)
    for name, before in store.appended[:-1]:
        step = int(name)
        assert f"await save_state:{name}" in before
        assert f"await sampler:{name}" in before
        assert all(f"metrics:{s}" in before for s in range(step))
    name, before = store.appended[-1]
    assert name == "final"
    assert "await save_state:final" in before


@pytest.mark.parametrize("kill_at", [1, 3, 4, 5, 8])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path: Path, kill_at: int) -> None:
    reference = RunDir.at(tmp_path / "reference")
    trained, _ = _run(reference)

    def kill(step: int) -> None:
        if step == kill_at:
            raise _Killed

    run = RunDir.at(tmp_path / "killed")
    with pytest.raises(_Killed):
        _run(run, on_row=kill)
    last = CheckpointLog(run.store).last_resumable()
    client, result = _run(run, resume=True)

    expected_start = last.step if last is not None else 0
    assert result.resumed_from == (expected_start if last is not None else None)
    if last is not None:
        assert f"load_state:{last.name}.json" in client.events
        # The first batch trained after resuming is the recorded (epoch, batch).
        assert client.events.index("await load_state") < client.events.index("fb:0")
    assert client.trained == trained.trained
    assert client.lrs == trained.lrs
    assert _rows(run) == _rows(reference)
    assert run.store.records[-1].final


def test_resume_truncates_metric_rows_of_steps_it_reruns(tmp_path: Path) -> None:
    def kill(step: int) -> None:
        if step == 5:
            raise _Killed

    run = RunDir.at(tmp_path)
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


def test_stop_event_saves_an_interrupted_checkpoint_and_resume_finishes(tmp_path: Path) -> None:
    reference = RunDir.at(tmp_path / "reference")
    trained, _ = _run(reference)
    stop = threading.Event()

    def interrupt(step: int) -> None:
        if step == 4:
            stop.set()

    run = RunDir.at(tmp_path / "run")
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


def test_resume_of_a_finished_run_does_nothing(tmp_path: Path) -> None:
    run = RunDir.at(tmp_path)
    _run(run)
    client, result = _run(run, resume=True)
    assert client.trained == []
    assert not result.interrupted
    assert result.final_record is not None
    assert result.final_record.final
    assert run.store.rewinds == []


def test_resume_without_a_record_starts_afresh_and_drops_stale_rows(tmp_path: Path) -> None:
    def kill(step: int) -> None:
        if step == 1:
            raise _Killed

    run = RunDir.at(tmp_path)
    with pytest.raises(_Killed):
        _run(run, on_row=kill)
    assert CheckpointLog(run.store).last_resumable() is None
    client, result = _run(run, resume=True)
    assert result.resumed_from is None
    assert run.store.rewinds == [0]
    assert len(client.trained) == 9
    assert [row["step"] for row in _rows(run)] == list(range(9))


def test_max_steps_caps_the_run_and_the_schedule(tmp_path: Path) -> None:
    config = SftLoopConfig(batch_size=3, num_epochs=3, max_steps=4, save_every=0, warmup_steps=0)
    run = RunDir.at(tmp_path)
    client, result = _run(run, config=config)
    assert result.total_steps == 4
    assert len(client.trained) == 4
    assert client.lrs[0] == pytest.approx(config.learning_rate)
    assert client.lrs == sorted(client.lrs, reverse=True)  # linear decay
    assert [r.name for r in run.store.records] == ["final"]


def test_batches_are_a_seeded_shuffle_per_epoch_without_repeats(tmp_path: Path) -> None:
    client, _ = _run(RunDir.at(tmp_path))
    epochs = [[i for batch in client.trained[e * 3 : e * 3 + 3] for i in batch] for e in range(3)]
    assert all(len(set(ids)) == 9 for ids in epochs)
    assert epochs[0] != epochs[1]


def test_batch_size_larger_than_the_data_names_both_numbers(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"batch_size 64 .*\(10 examples\)"):
        _run(RunDir.at(tmp_path), config=SftLoopConfig(batch_size=64))


def test_empty_training_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="training set is empty"):
        run_sft(
            CONFIG,
            training=FakeTrainingClient(tmp_path),
            train_datums=[],
            metrics=RecordingMetricsSink(),
            run_store=FakeRunStore(),
        )


def test_train_metrics_have_the_documented_names(tmp_path: Path) -> None:
    run = RunDir.at(tmp_path)
    _run(run)
    row = _rows(run)[0]
    assert row["train/nll"] == pytest.approx(0.5)
    for key in ("lr", "epoch", "progress", "num_sequences", "num_tokens", "num_loss_tokens"):
        assert key in row
    assert row["optim/grad_norm"] == 1.0


class FailingTrainingClient(FakeTrainingClient):
    """A backend that goes away: ``forward_backward`` number ``fail_at`` and every later
    call's future fails with a :class:`TrainingClientError` carrying the server's words."""

    def __init__(self, state_dir: Path, fail_at: int) -> None:
        super().__init__(state_dir)
        self.fail_at = fail_at

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        if self._fb >= self.fail_at:
            self._fb += 1
            failed: Future[ForwardBackwardOutput] = Future()
            failed.set_exception(TrainingClientError("server at 127.0.0.1:1 went away"))
            return failed
        return super().forward_backward(datums, loss_fn, loss_fn_config)

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        if self._grad is None:  # its forward_backward failed: the step is lost too
            failed: Future[OptimStepResponse] = Future()
            failed.set_exception(TrainingClientError("server at 127.0.0.1:1 went away"))
            return failed
        return super().optim_step(params)


@pytest.mark.parametrize("fail_at", [3, 5, 7])
def test_a_backend_failure_surfaces_typed_and_leaves_a_resumable_record(
    tmp_path: Path, fail_at: int
) -> None:
    reference = RunDir.at(tmp_path / "reference")
    trained, _ = _run(reference)
    run = RunDir.at(tmp_path / "failed")
    with pytest.raises(TrainingClientError, match="went away"):
        run_sft(
            CONFIG,
            training=FailingTrainingClient(run.state_dir, fail_at),
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
