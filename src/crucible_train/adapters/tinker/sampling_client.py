"""Tinker sampling client (adapter layer, optional ``tinker`` SDK).

Samples from a base model or from ``tinker://`` sampler weights on a Tinker service.
The client holds only its settings until the first call, which opens the session and
the SDK's sampling client on the dispatcher thread (see
:mod:`crucible_train.adapters.tinker._dispatch`); so it pickles as its settings (rollout
workers receive it by pickle and open their own session). Calls are submitted in order
but their futures resolve as soon as each result arrives.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from crucible_train.adapters.tinker._base import TinkerAdapter
from crucible_train.adapters.tinker._dispatch import Dispatcher, Finish, Lazy
from crucible_train.adapters.tinker._sdk import (
    CLOSE_TIMEOUT_S,
    close_service,
    from_sdk_sample_response,
    import_tinker,
    new_service_client,
    normalise_prompt_logprobs,
    resolved,
    to_sdk_model_input,
    to_sdk_sampling_params,
    translate,
    wait,
)
from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.errors import InvalidDataError, SamplingClientError
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import ModelInput, SampleResponse, SamplingParams

__all__ = ["TinkerSamplingClient"]


class TinkerSamplingClient(TinkerAdapter, SamplingClient):
    """Samples from one fixed set of weights on a Tinker service (see the module docstring).

    Thread-safe; picklable (a pickle holds the settings, API key included, so workers
    can reconnect). Call :meth:`close` to stop its dispatcher thread.
    """

    def _start(self) -> None:
        """Prepare the connection; no request is sent until the first call.

        The settings are the fields of :class:`~.settings.TinkerSettings`
        (``sampling.tinker``); ``model_path`` names ``tinker://`` sampler weights, and
        ``None`` samples ``base_model``. The LoRA fields are accepted and unused.

        Raises:
            AdapterUnavailableError: the ``tinker`` SDK is not installed.
        """
        self._tinker = import_tinker("sampling")
        self._lock = threading.Lock()
        self._shared_service: Callable[[], Any] | None = None
        self._connection: Lazy[tuple[Any, Any]] = self._new_connection()
        self._dispatcher: Dispatcher | None = None

    def __repr__(self) -> str:
        return f"TinkerSamplingClient(settings={self._settings!r})"

    def __getstate__(self) -> dict[str, Any]:
        # SDK clients hold sessions, threads and an event loop: pickle the settings only.
        fields = TinkerSettings.__attrs_attrs__
        return {field.name: getattr(self._settings, field.name) for field in fields}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def settings(self) -> TinkerSettings:
        """The validated settings (``repr`` masks the API key)."""
        return self._settings

    def _share_service(self, service: Callable[[], Any]) -> None:
        """Reuse a training client's ``ServiceClient`` (one session) while unpickled."""
        self._shared_service = service

    def _translate(self, exc: BaseException, operation: str) -> BaseException:
        return translate(
            exc, operation, fallback=SamplingClientError, secret=self._settings.api_key
        )

    def _submit(self, operation: str, step: Callable[[], Finish]) -> Future[Any]:
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(name="tinker-sampler", ordered=False)
            dispatcher = self._dispatcher
        return dispatcher.submit(operation, step, self._translate)

    def _fail(self, operation: str, exc: BaseException) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(self._translate(exc, operation))
        return future

    def _new_connection(self) -> Lazy[tuple[Any, Any]]:
        return Lazy(self._connect, name="tinker-sampler-connect")

    def _connected(self) -> Any:
        """The SDK sampling client, connected on first use (bounded wait)."""
        with self._lock:
            connection = self._connection
        return connection.get(self._settings.future_timeout_s, "connect")[0]

    def _connect(self) -> tuple[Any, Any]:
        """``(SDK sampling client, our own ServiceClient or None)``; on a helper thread."""
        tinker, settings = self._tinker, self._settings
        service = self._shared_service() if self._shared_service is not None else None
        own = None
        if service is None:
            # Our own session (not a training client's), so close() ends it.
            service = own = new_service_client(tinker, settings)
        if settings.model_path is not None:
            created = service.create_sampling_client(model_path=settings.model_path)
        else:
            created = service.create_sampling_client(base_model=settings.base_model)
        client = resolved(created, (tinker.SamplingClient,), settings.future_timeout_s)
        return client, own

    def sample(
        self, prompt: ModelInput, num_samples: int, params: SamplingParams
    ) -> Future[SampleResponse]:
        """Generate ``num_samples`` continuations of ``prompt`` on the server.

        ``params.stop`` may hold strings or token ids; an empty ``stop`` keeps the
        server's end-of-sequence stopping. Fails with ``InvalidDataError`` for an empty
        prompt, ``BackendError`` subclasses when the service fails.
        """
        try:
            _check_prompt(prompt)
            if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
                raise InvalidDataError(f"num_samples is {num_samples!r}; use a whole number >= 1")
            sdk_prompt = to_sdk_model_input(self._tinker, prompt)
            sdk_params = to_sdk_sampling_params(self._tinker, params)
        except Exception as exc:
            return self._fail("sample", exc)
        timeout = self._settings.future_timeout_s

        def step() -> Finish:
            sdk = self._connected().sample(
                prompt=sdk_prompt, num_samples=num_samples, sampling_params=sdk_params
            )
            return lambda: from_sdk_sample_response(wait(sdk, timeout, "sample"))

        return self._submit("sample", step)

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        """Log-probability of every prompt token given its prefix; entry 0 is ``None``.

        Servers differ (skyrl-tx omits the leading ``None``); the result always has
        ``prompt.length`` entries.
        """
        try:
            _check_prompt(prompt)
            sdk_prompt = to_sdk_model_input(self._tinker, prompt)
        except Exception as exc:
            return self._fail("compute_logprobs", exc)
        timeout = self._settings.future_timeout_s

        def step() -> Finish:
            sdk = self._connected().compute_logprobs(sdk_prompt)
            return lambda: normalise_prompt_logprobs(
                wait(sdk, timeout, "compute_logprobs"), prompt.length
            )

        return self._submit("compute_logprobs", step)

    def close(self) -> None:
        """Stop the dispatcher after queued calls and end this client's own session
        (not a shared training session), waiting at most ``CLOSE_TIMEOUT_S`` seconds.
        Idempotent; a later call reconnects."""
        with self._lock:
            dispatcher, self._dispatcher = self._dispatcher, None
            connection, self._connection = self._connection, self._new_connection()
        if dispatcher is None:
            return

        def step() -> Finish:
            # Only our own session; a connection still retrying is closed once it opens.
            connection.discard(lambda built: None if built[1] is None else close_service(built[1]))
            return lambda: None

        closed = dispatcher.submit("close", step, self._translate)
        dispatcher.close()
        with contextlib.suppress(TimeoutError):
            closed.exception(timeout=CLOSE_TIMEOUT_S)


def _check_prompt(prompt: ModelInput) -> None:
    if not isinstance(prompt, ModelInput):
        raise InvalidDataError(f"prompt must be a ModelInput, got {type(prompt).__name__}")
    if prompt.length == 0:
        raise InvalidDataError("prompt is empty; give at least one token")
