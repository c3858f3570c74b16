"""The DPO loop on the fake TrainingClient: reference computed once (reused on resume),
checkpoint records, exact resume after Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from crucible_train.core.training.dpo import REFERENCE_ARRAYS, DpoLoopConfig, run_dpo
from crucible_train.errors import ConfigurationError
from crucible_train.types import (
    Datum,
    EncodedTextChunk,
    ModelInput,
    TensorData,
)

from fakes import FakeMetricsSink, FakeRunStore, FakeTrainingClient, FakeTrainingState

VOCAB = 24


def _client(states: dict[str, FakeTrainingState] | None = None) -> FakeTrainingClient:
    """A fake backend over ``VOCAB`` tokens whose initial logits rise from -1 to 1."""
    return FakeTrainingClient(theta=np.linspace(-1.0, 1.0, VOCAB), states=states)


def _datum(tokens: list[int]) -> Datum:
    return Datum(
        model_input=ModelInput(chunks=(EncodedTextChunk(tokens=[0, *tokens[:-1]]),)),
        loss_fn_inputs={
            "target_tokens": TensorData.from_numpy(np.asarray(tokens, dtype=np.int64)),
            "weights": TensorData.from_numpy(np.ones(len(tokens), dtype=np.float32)),
        },
    )


def _pairs(n: int, offset: int = 0) -> list[Datum]:
    out: list[Datum] = []
    for i in range(n):
        good = (i + offset) % 8
        out += [_datum([good, 8 + good]), _datum([good, 16 + good])]
    return out


CONFIG = DpoLoopConfig(
    learning_rate=2.0,
    lr_schedule="constant",
    warmup_steps=0,
    beta=1.0,
    batch_size=2,
    num_epochs=2,
    max_steps=6,
    eval_every=0,
    save_every=2,
    reference_batch_size=1000,
)


def _run(
    store: FakeRunStore,
    client: FakeTrainingClient,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    config: DpoLoopConfig = CONFIG,
) -> tuple[Any, FakeMetricsSink]:
    sink = FakeMetricsSink()
    stop = threading.Event()

    class StopAfter:
        def start(self, total_steps: int, first_step: int, description: str) -> None: ...
        def note(self, message: str) -> None: ...
        def finish(self) -> None: ...
        def advance(self, step: int, metrics: Mapping[str, float]) -> None:
            if stop_after is not None and step + 1 >= stop_after:
                stop.set()

    result = run_dpo(
        config,
        training=client,
        train_pairs=_pairs(8),
        test_pairs=_pairs(4, offset=4),
        metrics=sink,
        run_store=store,
        progress=StopAfter(),
        stop=stop,
        resume=resume,
    )
    return result, sink


def _rows(sink: FakeMetricsSink) -> list[tuple[int | None, dict[str, Any]]]:
    return [(s, {k: v for k, v in m.items() if not k.startswith("time/")}) for s, m in sink.rows]


def test_training_raises_held_out_preference_accuracy() -> None:
    client = _client()
    result, sink = _run(FakeRunStore(), client)
    assert {batch.loss_fn for batch in client.batches} == {"custom"}  # DPO's own loss
    evals = [m for _, m in sink.rows if "test/dpo_accuracy" in m]
    assert evals[0]["test/dpo_accuracy"] == 0.0  # tied with the reference before any step
    assert evals[-1]["test/dpo_accuracy"] == 1.0
    assert evals[-1]["test/accuracy"] > evals[0]["test/accuracy"]
    train = [m for _, m in sink.rows if "dpo/loss" in m]
    assert len(train) == 6
    assert train[0]["dpo/loss"] == pytest.approx(np.log(2.0))
    assert {
        "dpo/accuracy",
        "dpo/margin",
        "dpo/chosen_reward",
        "dpo/rejected_reward",
        "lr",
        "progress",
    } <= set(train[0])
    assert train[-1]["progress"] == 1.0
    assert result.steps_done == 6
    assert not result.interrupted


def test_checkpoint_records_name_the_next_step() -> None:
    store = FakeRunStore()
    _run(store, _client())
    records = store.records
    assert [(r.name, r.step, r.epoch, r.batch, r.final) for r in records] == [
        ("000002", 2, 0, 2, False),
        ("000004", 4, 1, 0, False),
        ("final", 6, 2, 0, True),
    ]
    assert records[0].state_path == "state/000002"
    assert records[0].sampler_path == "sampler://000002/2"  # saved after 2 steps


def test_reference_is_computed_once_and_reloaded_on_resume() -> None:
    uninterrupted_client = _client()
    _, uninterrupted = _run(FakeRunStore(), uninterrupted_client)

    first = _client()
    store = FakeRunStore()
    result, before = _run(store, first, stop_after=3)
    # Pipelined one step ahead: step 3 was already submitted when the stop was seen.
    assert result.interrupted
    assert result.steps_done == 4
    assert list(store.arrays[REFERENCE_ARRAYS]) == ["train", "test", "fingerprint"]
    assert store.arrays[REFERENCE_ARRAYS]["train"].shape == (8, 2)
    # Reference of train + test (one call each) and the step-0 evaluation.
    assert len(first.forward_calls) == 3

    second = _client(first.states)
    resumed, after = _run(store, second, resume=True)
    assert resumed.resumed_from == 4
    assert store.rewinds == [4]
    assert resumed.steps_done == 6
    # Only the final evaluation of the 8 held-out datums: the reference was not recomputed.
    assert second.forward_calls == [(8, "cross_entropy")]
    np.testing.assert_array_equal(second.theta, uninterrupted_client.theta)
    kept = [(s, m) for s, m in _rows(before) if s is not None and s < 4]
    assert kept + _rows(after) == _rows(uninterrupted)


def test_resume_without_the_reference_file_is_refused() -> None:
    first = _client()
    store = FakeRunStore()
    _run(store, first, stop_after=3)
    del store.arrays[REFERENCE_ARRAYS]
    second = _client(first.states)
    with pytest.raises(
        ConfigurationError,
        match=r"cannot resume: memory://run/dpo_reference \(reference log-probs of the initial",
    ):
        _run(store, second, resume=True)


def test_resume_with_different_data_is_refused() -> None:
    first = _client()
    store = FakeRunStore()
    _run(store, first, stop_after=3)
    second = _client(first.states)
    with pytest.raises(ConfigurationError, match="different preference data"):
        run_dpo(
            CONFIG,
            training=second,
            train_pairs=_pairs(8, offset=1),
            test_pairs=_pairs(4, offset=4),
            metrics=FakeMetricsSink(),
            run_store=store,
            resume=True,
        )


def test_config_validation_lists_every_problem() -> None:
    with pytest.raises(ConfigurationError) as info:
        DpoLoopConfig(beta=0.0, batch_size=0, beta1=1.0, lr_schedule="nope")
    text = str(info.value)
    for name in ("beta must", "batch_size must", "beta1 must", "lr_schedule"):
        assert name in text
