"""Recording fakes of our ports: in-memory implementations that keep what they were given,
so tests assert on end state instead of on calls (cosmicpython style)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.ports.metrics import MetricsSink, MetricValue
from crucible_train.ports.results_store import RESULTS_FORMAT_VERSION, ResultsStore
from crucible_train.ports.run_store import CheckpointRecord, RunStore
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.tokenizer import Tokenizer
from crucible_train.types import ModelInput, SampleResponse, SamplingParams, TokensWithLogprobs


class RecordingMetricsSink(MetricsSink):
    """Keeps every row, config and text it receives; can be told to fail."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.rows: list[tuple[int | None, dict[str, MetricValue]]] = []
        self.hparams: list[dict[str, Any]] = []
        self.texts: dict[str, str] = {}
        self.syncs = 0
        self.closed = 0
        self.exit_codes: list[int] = []
        self.fail_with = fail_with
        self.url: str | None = None

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def log_hparams(self, config: Mapping[str, Any]) -> None:
        self._maybe_fail()
        self.hparams.append(dict(config))

    def log_metrics(self, metrics: Mapping[str, MetricValue], step: int | None = None) -> None:
        self._maybe_fail()
        self.rows.append((step, dict(metrics)))

    def log_long_text(self, key: str, text: str) -> None:
        self._maybe_fail()
        self.texts[key] = text

    def sync(self) -> None:
        self._maybe_fail()
        self.syncs += 1

    def get_url(self) -> str | None:
        return self.url

    def close(self, exit_code: int = 0) -> None:
        self.closed += 1
        self.exit_codes.append(exit_code)


class FakeRunStore(RunStore):
    """A run store in memory: records, arrays and every metric rewind are attributes.

    Args:
        metrics: the sink whose rows the metric rewind drops, as the files store drops the
            rows the files sink wrote (:attr:`metrics`; a new one when not given).
        location: what messages name as the run's place.
    """

    def __init__(
        self, *, metrics: RecordingMetricsSink | None = None, location: str = "memory://run"
    ) -> None:
        self.records: list[CheckpointRecord] = []
        self.arrays: dict[str, dict[str, npt.NDArray[Any]]] = {}
        self.rewinds: list[int] = []
        self.metrics = metrics if metrics is not None else RecordingMetricsSink()
        self._location = location

    @property
    def location(self) -> str:
        return self._location

    def arrays_location(self, name: str) -> str:
        return f"{self._location}/{name}"

    def checkpoint_records(self) -> list[CheckpointRecord]:
        return list(self.records)

    def append_checkpoint_record(self, record: CheckpointRecord) -> None:
        self.records.append(record)

    def rewind_metrics(self, first_step: int) -> int:
        self.rewinds.append(first_step)
        rows = self.metrics.rows
        kept = [row for row in rows if row[0] is None or row[0] < first_step]
        dropped = len(rows) - len(kept)
        rows[:] = kept
        return dropped

    def save_arrays(self, name: str, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
        self.arrays[name] = {key: np.array(value, copy=True) for key, value in arrays.items()}

    def load_arrays(self, name: str) -> dict[str, np.ndarray[Any, Any]] | None:
        stored = self.arrays.get(name)
        if stored is None:
            return None
        return {key: np.array(value, copy=True) for key, value in stored.items()}


# --- sampling: a scripted sampler, a character tokenizer and a toy chat renderer ------------


class RecordingSamplingClient(SamplingClient):
    """Answers ``sample`` with scripted sequences (the last one repeats) and records calls.

    ``calls`` holds ``(prompt, num_samples, params)`` per call; ``fail_with`` makes every
    future fail with that exception.
    """

    def __init__(
        self,
        replies: Sequence[TokensWithLogprobs] = (),
        *,
        fail_with: Exception | None = None,
    ) -> None:
        self.replies = list(replies) or [TokensWithLogprobs(tokens=(), stop_reason="stop")]
        self.calls: list[tuple[ModelInput, int, SamplingParams]] = []
        self.fail_with = fail_with

    def sample(
        self, prompt: ModelInput, num_samples: int, params: SamplingParams
    ) -> Future[SampleResponse]:
        future: Future[SampleResponse] = Future()
        index = len(self.calls)
        self.calls.append((prompt, num_samples, params))
        if self.fail_with is not None:
            future.set_exception(self.fail_with)
            return future
        reply = self.replies[min(index, len(self.replies) - 1)]
        future.set_result(SampleResponse(sequences=[reply] * num_samples))
        return future

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        future: Future[list[float | None]] = Future()
        values: list[float | None] = [None] + [0.0] * max(0, prompt.length - 1)
        future.set_result(values)
        return future


class CharTokenizer(Tokenizer):
    """One token per character (ids = code points below 256) plus ``<eot>`` and ``<eos>``."""

    SPECIALS: ClassVar[dict[str, int]] = {"<eot>": 256, "<eos>": 257}

    @property
    def vocab_size(self) -> int:
        return 258

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return dict(self.SPECIALS)

    @property
    def eos_token_id(self) -> int | None:
        return self.SPECIALS["<eos>"]

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        out: list[int] = []
        index = 0
        while index < len(text):
            special = next(
                (s for s in self.SPECIALS if allow_special and text.startswith(s, index)), None
            )
            if special is not None:
                out.append(self.SPECIALS[special])
                index += len(special)
            else:
                out.append(ord(text[index]) % 256)
                index += 1
        return out

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        return [self.encode(text, allow_special=allow_special) for text in texts]

    def decode(self, tokens: Sequence[int]) -> str:
        names = {v: k for k, v in self.SPECIALS.items()}
        return "".join(names.get(t, chr(t)) for t in tokens)


class ToyChatRenderer:
    """A minimal chat format: ``role: content<eot>`` per message, then ``assistant:``.

    ``parse_response`` wants the turn to end in ``<eot>``; without it the message is
    returned with ``ok`` false. ``calls`` records the messages of each prompt built.
    """

    def __init__(self, stops: list[int] | list[str] | None = None) -> None:
        self._tokenizer = CharTokenizer()
        self._stops: list[int] | list[str] = [256] if stops is None else stops
        self.calls: list[list[dict[str, Any]]] = []

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def build_generation_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        prefill: str | None = None,
    ) -> ModelInput:
        self.calls.append([dict(m) for m in messages])
        text = "".join(f"{m['role']}: {m['content']}<eot>" for m in messages)
        return ModelInput.from_ints(self._tokenizer.encode(text + "assistant:" + (prefill or "")))

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        ended = bool(tokens) and tokens[-1] == CharTokenizer.SPECIALS["<eot>"]
        body = list(tokens[:-1]) if ended else list(tokens)
        return {"role": "assistant", "content": self._tokenizer.decode(body)}, ended

    def get_stop_sequences(self) -> list[int] | list[str]:
        return list(self._stops)


# --- evaluation: the results log ----------------------------------------------------------


class FakeResultsStore(ResultsStore):
    """A results log in memory: the header and every appended chunk are attributes.

    ``header`` is ``None`` until :meth:`open_run` starts a log, then
    ``{"run_fingerprint": ..., "version": ...}``; ``chunks`` holds each non-empty append
    (records after a JSON round trip, as a file would give them back); ``opens`` records
    ``(fingerprint, resume, overwrite)`` per call.
    """

    def __init__(self, *, location: str = "memory://results") -> None:
        self.header: dict[str, Any] | None = None
        self.chunks: list[list[dict[str, Any]]] = []
        self.opens: list[tuple[str, bool, bool]] = []
        self._location = location
        self._open = False

    @property
    def location(self) -> str:
        return self._location

    @property
    def appended(self) -> list[dict[str, Any]]:
        """Every record stored, in order."""
        return [record for chunk in self.chunks for record in chunk]

    def open_run(self, fingerprint: str, *, resume: bool = False, overwrite: bool = False) -> None:
        self.opens.append((fingerprint, resume, overwrite))
        if self.header is not None and resume:
            found = self.header["run_fingerprint"]
            if found != fingerprint:
                raise ConfigurationError(
                    f"results file {self._location} was written by a different run "
                    f"(fingerprint {found}, expected {fingerprint}); use a new --out or "
                    "drop --resume"
                )
        elif self.header is not None and not overwrite:
            raise ConfigurationError(
                f"results file {self._location} already exists; pass --resume to continue "
                "it, or choose a new --out"
            )
        else:
            self.header = {"run_fingerprint": fingerprint, "version": RESULTS_FORMAT_VERSION}
            self.chunks = []
        self._open = True

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not self._open:
            raise ConfigurationError(f"{self._location} is not open; call open_run first")
        chunk: list[dict[str, Any]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InvalidDataError(f"result record {index} is not a JSON object")
            try:
                # Encoded like the files adapter, so a lone surrogate fails here too.
                text = json.dumps(record, ensure_ascii=False, allow_nan=False)
                chunk.append(json.loads(text.encode()))
            except (TypeError, ValueError) as exc:
                raise InvalidDataError(f"result record {index} is not JSON: {exc}") from None
        if chunk:
            self.chunks.append(chunk)

    def records(self) -> Iterator[dict[str, Any]]:
        for record in self.appended:
            yield json.loads(json.dumps(record))
