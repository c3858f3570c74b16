"""SFT loop pipelining: steps/s against a slow remote-like backend, pipelined vs not.

The loop is :func:`~crucible_train.core.training.sft.run_sft`; the backend is a
benchmark-only :class:`LatencyTrainingClient` wrapping a trivial, instant TrainingClient.
The wrapper models a remote trainer that works in clock cycles of ``L`` seconds (the way
hosted trainers batch work): calls run in submission order on ONE worker thread; at the
start of each cycle the worker takes the calls queued by then, up to one training step
(``forward_backward`` + ``optim_step`` and any saves queued with them), runs them, and
their results become available when the cycle ends, ``L`` later. A step that is not
queued when a cycle starts waits for the next one. So the backend can do at most one
step per ``L``: the bound is ``1/L`` steps/s.

* pipelined (``submit_ahead=1``, the default): the next step is always queued before
  the cycle starts, so the loop should reach >= 0.9 of the bound;
* un-pipelined (``submit_ahead=0``): the loop submits a step only after the previous
  one's results arrived, at a cycle boundary, so it misses that cycle and runs every
  other one: about 0.5 of the bound.

Steps/s is measured between the first and the last logged step (the start-up and the
final checkpoint are left out). Prints one JSON line::

    python benchmarks/pipelining.py [--latency 0.05] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.core.training.sft import SftLoopConfig, run_sft
from crucible_train.types import (
    AdamParams,
    Datum,
    EncodedTextChunk,
    ForwardBackwardOutput,
    ModelInput,
    OptimStepResponse,
    TensorData,
)


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class InstantTrainingClient:
    """A trivial backend: every call returns at once (logprobs -0.5, grad norm 1)."""

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        outputs = [
            {"logprobs": TensorData.from_numpy(np.full(d.model_input.length, -0.5, np.float32))}
            for d in datums
        ]
        return _done(ForwardBackwardOutput(loss_fn_outputs=outputs))

    def forward(self, datums: Sequence[Datum], loss_fn: str) -> Future[ForwardBackwardOutput]:
        return self.forward_backward(datums, loss_fn)

    def forward_backward_custom(self, datums: Sequence[Datum], loss_fn: Any) -> Future[Any]:
        raise NotImplementedError

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        return _done(OptimStepResponse(metrics={"grad_norm": 1.0}))

    def save_state(self, name: str) -> Future[str]:
        return _done(f"state://{name}")

    def load_state(self, path: str) -> Future[None]:
        return _done(None)

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        return _done(f"sampler://{name}")

    def create_sampling_client(self, path: str) -> Any:
        raise NotImplementedError


class LatencyTrainingClient:
    """Wraps ``inner``: calls run in order on one worker thread, one step per ``L`` cycle."""

    def __init__(self, inner: InstantTrainingClient, latency_s: float) -> None:
        self._inner = inner
        self._latency = latency_s
        self._queue: deque[tuple[str, Callable[[], Future[Any]], Future[Any]]] = deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._run, name="latency-backend", daemon=True)
        self._worker.start()

    def _submit(self, kind: str, call: Callable[[], Future[Any]]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self._queue.append((kind, call, future))
        return future

    def _take_one_step(self) -> list[tuple[str, Callable[[], Future[Any]], Future[Any]]]:
        taken: list[tuple[str, Callable[[], Future[Any]], Future[Any]]] = []
        with self._lock:
            seen_optim = False
            while self._queue:
                kind = self._queue[0][0]
                if seen_optim and kind in ("forward_backward", "optim_step"):
                    break  # the next step: next cycle
                taken.append(self._queue.popleft())
                seen_optim = seen_optim or kind == "optim_step"
        return taken

    def _run(self) -> None:
        tick = time.perf_counter()
        while not self._closed.is_set():
            delay = tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            batch = self._take_one_step()
            results = [(future, call().result()) for _, call, future in batch]
            tick += self._latency
            delay = tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            for future, value in results:
                future.set_result(value)

    def close(self) -> None:
        self._closed.set()
        self._worker.join()

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        return self._submit(
            "forward_backward",
            lambda: self._inner.forward_backward(datums, loss_fn, loss_fn_config),
        )

    def forward(self, datums: Sequence[Datum], loss_fn: str) -> Future[ForwardBackwardOutput]:
        return self._submit("forward", lambda: self._inner.forward(datums, loss_fn))

    def forward_backward_custom(self, datums: Sequence[Datum], loss_fn: Any) -> Future[Any]:
        raise NotImplementedError

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        return self._submit("optim_step", lambda: self._inner.optim_step(params))

    def save_state(self, name: str) -> Future[str]:
        return self._submit("save_state", lambda: self._inner.save_state(name))

    def load_state(self, path: str) -> Future[None]:
        return self._submit("load_state", lambda: self._inner.load_state(path))

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        return self._submit("sampler", lambda: self._inner.save_weights_for_sampler(name))

    def create_sampling_client(self, path: str) -> Any:
        raise NotImplementedError


class TimingSink:
    """Records when each step's metrics were logged."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.times.append(time.perf_counter())

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        pass

    def log_long_text(self, key: str, text: str) -> None:
        pass

    def sync(self) -> None:
        pass

    def get_url(self) -> str | None:
        return None

    def close(self, exit_code: int = 0) -> None:
        pass


def _datums(n: int) -> list[Datum]:
    return [
        Datum(
            model_input=ModelInput(chunks=(EncodedTextChunk(tokens=(i % 256, 300, 301)),)),
            loss_fn_inputs={
                "target_tokens": TensorData.from_numpy(np.array([300, 301, 302], np.int64)),
                "weights": TensorData.from_numpy(np.array([0, 1, 1], np.float32)),
            },
        )
        for i in range(n)
    ]


def measure(latency_s: float, steps: int, submit_ahead: int) -> float:
    """Steps/s of ``run_sft`` (``submit_ahead``) against the latency backend."""
    config = SftLoopConfig(
        batch_size=8,
        num_epochs=1,
        max_steps=steps,
        warmup_steps=0,
        save_every=0,
        submit_ahead=submit_ahead,
    )
    client = LatencyTrainingClient(InstantTrainingClient(), latency_s)
    sink = TimingSink()
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            run_sft(
                config,
                training=client,  # type: ignore[arg-type]
                train_datums=_datums(8 * steps),
                metrics=sink,  # type: ignore[arg-type]
                run_store=FilesRunStore(run_dir),
            )
    finally:
        client.close()
    times = sink.times
    return (len(times) - 1) / (times[-1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per cycle (L)")
    parser.add_argument("--steps", type=int, default=40, help="steps per measurement")
    args = parser.parse_args()
    bound = 1.0 / args.latency
    pipelined = measure(args.latency, args.steps, submit_ahead=1)
    unpipelined = measure(args.latency, args.steps, submit_ahead=0)
    print(
        json.dumps(
            {
                "benchmark": "sft_pipelining",
                "latency_s": args.latency,
                "steps": args.steps,
                "bound_steps_per_s": round(bound, 3),
                "pipelined_steps_per_s": round(pipelined, 3),
                "pipelined_fraction_of_bound": round(pipelined / bound, 3),
                "unpipelined_steps_per_s": round(unpipelined, 3),
                "unpipelined_fraction_of_bound": round(unpipelined / bound, 3),
                "goal_pipelined_fraction_at_least": 0.9,
                "goal_met": pipelined / bound >= 0.9,
            }
        )
    )


if __name__ == "__main__":
    main()
