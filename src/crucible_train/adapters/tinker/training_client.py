"""Tinker training client (adapter layer, optional ``tinker`` SDK).

Trains a LoRA adapter on a Tinker service (hosted, or self-hosted such as skyrl-tx) with
the official SDK, 0.16.x or 0.38.x. How calls run: see
:mod:`crucible_train.adapters.tinker._dispatch`. The connection (a session and the LoRA
model) is opened by the first call, on the dispatcher thread, so constructing the client
never touches the network; a failed connection fails that call and is retried by the
next one.

Custom losses run without torch: a forward pass gives the logprobs, the numpy loss gives
``d loss / d logprobs``, and a ``cross_entropy`` forward-backward with ``weights =
-grad`` applies the gradient (``cross_entropy`` is ``-sum(weights * logprobs)``, so its
gradient is ``sum(grad * d logprobs)``: the linear surrogate of the port).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crucible_train.adapters.tinker._base import TinkerAdapter
from crucible_train.adapters.tinker._dispatch import Dispatcher, Finish, Lazy
from crucible_train.adapters.tinker._sdk import (
    CLOSE_TIMEOUT_S,
    close_service,
    from_sdk_forward_backward,
    from_sdk_optim_step,
    import_tinker,
    is_deprecated,
    new_service_client,
    resolved,
    to_sdk_adam_params,
    to_sdk_datum,
    translate,
    wait,
)
from crucible_train.adapters.tinker.sampling_client import TinkerSamplingClient
from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.errors import ConfigurationError, InvalidDataError, TrainingClientError
from crucible_train.ports.training import CustomLossFn, TrainingClient
from crucible_train.types import (
    LOSS_FN_NAMES,
    AdamParams,
    Datum,
    ForwardBackwardOutput,
    LossFnName,
    OptimStepResponse,
    TensorData,
)

__all__ = ["LOSS_INPUTS", "TinkerTrainingClient"]

_POLICY_INPUTS: Final = ("target_tokens", "logprobs", "advantages")
LOSS_INPUTS: Final[Mapping[str, tuple[str, ...]]] = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": _POLICY_INPUTS,
    "ppo": _POLICY_INPUTS,
    "cispo": _POLICY_INPUTS,
    "dro": _POLICY_INPUTS,
}
"""Loss name → the ``loss_fn_inputs`` keys the Tinker API requires for it."""


def _check_loss(datums: Sequence[Datum], loss_fn: str) -> None:
    """Refuse an unknown loss or a datum without its inputs before anything is sent."""
    if not isinstance(loss_fn, str) or loss_fn not in LOSS_INPUTS:
        raise ConfigurationError(
            f"unknown loss_fn {loss_fn!r}; valid: {', '.join(LOSS_FN_NAMES)} "
            "(or use forward_backward_custom for your own loss)"
        )
    if not datums:
        raise InvalidDataError("datums is empty; give at least one datum")
    for index, datum in enumerate(datums):
        if not isinstance(datum, Datum):
            raise InvalidDataError(f"datums[{index}] is a {type(datum).__name__}, not a Datum")
        missing = [key for key in LOSS_INPUTS[loss_fn] if key not in datum.loss_fn_inputs]
        if missing:
            raise ConfigurationError(
                f"datums[{index}]: loss_fn {loss_fn!r} needs loss_fn_inputs "
                f"{', '.join(LOSS_INPUTS[loss_fn])}; missing {', '.join(missing)}"
            )


class TinkerTrainingClient(TinkerAdapter, TrainingClient):
    """Trains a LoRA adapter on a Tinker service (see the module docstring).

    Thread-safety: methods may be called from any thread; calls reach the server in
    submission order and their futures resolve in that order. Not picklable. Call
    :meth:`close` (or use it as a context manager) to end the session.
    """

    def _start(self) -> None:
        """Start the dispatcher; no request is sent yet.

        The settings are the fields of :class:`~.settings.TinkerSettings`
        (``training.tinker`` in ``containers.yaml``); see that class for each one.

        Raises:
            AdapterUnavailableError: the ``tinker`` SDK is not installed.
        """
        self._tinker = import_tinker("training")
        # Touched only on the dispatcher thread (the SDK objects and their swaps).
        self._service: Any = None
        self._client: Any = None
        self._connection: Lazy[tuple[Any, Any]] = Lazy(self._connect, name="tinker-connect")
        self._dispatcher = Dispatcher(
            name="tinker-trainer", ordered=True, sequential=not self._settings.pipeline
        )
        self._close_lock = threading.Lock()
        self._closed = False
        self._saved_names: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return f"TinkerTrainingClient(settings={self._settings!r})"

    def __reduce__(self) -> Any:
        raise TypeError("TinkerTrainingClient owns a server session and cannot be pickled")

    @property
    def settings(self) -> TinkerSettings:
        """The validated settings (``repr`` masks the API key)."""
        return self._settings

    # --- plumbing -----------------------------------------------------------------------

    def _translate(self, exc: BaseException, operation: str) -> BaseException:
        return translate(
            exc, operation, fallback=TrainingClientError, secret=self._settings.api_key
        )

    def _submit(self, operation: str, step: Any) -> Future[Any]:
        return self._dispatcher.submit(operation, step, self._translate)

    def _fail(self, operation: str, exc: BaseException) -> Future[Any]:
        return self._dispatcher.fail(operation, exc, self._translate)

    def _timeout(self) -> float | None:
        return self._settings.future_timeout_s

    def _connected(self) -> Any:
        """The SDK training client, connected on first use (dispatcher thread only)."""
        if self._client is None:
            self._service, self._client = self._connection.get(self._timeout(), "connect")
        return self._client

    def _connect(self) -> tuple[Any, Any]:
        """Open the session and create (or restore) the model; runs on a helper thread."""
        tinker, settings = self._tinker, self._settings
        service = new_service_client(tinker, settings)
        path = settings.model_path
        if path is not None and is_deprecated(tinker.TrainingClient.load_state):
            # 0.38: load_state is deprecated; start a new client from the saved weights.
            created = service.create_training_client_from_state(path)
        else:
            created = service.create_lora_training_client(
                base_model=settings.base_model,
                rank=settings.lora_rank,
                seed=settings.seed,
                train_mlp=settings.train_mlp,
                train_attn=settings.train_attn,
                train_unembed=settings.train_unembed,
            )
        client = resolved(created, (tinker.TrainingClient,), self._timeout())
        if path is not None and not is_deprecated(tinker.TrainingClient.load_state):
            wait(client.load_state(path), self._timeout(), "load model_path")
        return service, client

    def _sdk_datums(self, datums: Sequence[Datum]) -> list[Any]:
        return [to_sdk_datum(self._tinker, datum) for datum in datums]

    # --- the port -----------------------------------------------------------------------

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: LossFnName,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        """Compute a built-in loss on the server and accumulate its gradients.

        Args:
            datums: examples with the loss's ``loss_fn_inputs`` (:data:`LOSS_INPUTS`).
            loss_fn: ``cross_entropy``, ``importance_sampling``, ``ppo``, ``cispo`` or
                ``dro`` (which of them a server supports is up to the server: skyrl-tx
                0.3.0 answers 422 for ``cispo`` and ``dro``).
            loss_fn_config: passed to the server unchanged (clip thresholds, ...).

        Returns:
            A future of per-datum ``logprobs``/``elementwise_loss`` and the server's
            metrics; fails with ``ConfigurationError`` for an unknown loss or missing
            input, ``BackendRequestError`` when the server refuses the request, another
            ``TrainingClientError`` when the backend fails.
        """
        try:
            _check_loss(datums, loss_fn)
            sdk_datums = self._sdk_datums(datums)
        except Exception as exc:
            return self._fail("forward_backward", exc)
        config = None if loss_fn_config is None else dict(loss_fn_config)

        def step() -> Finish:
            sdk = self._connected().forward_backward(sdk_datums, loss_fn, config)
            return lambda: from_sdk_forward_backward(wait(sdk, self._timeout(), "forward_backward"))

        return self._submit("forward_backward", step)

    def forward(
        self, datums: Sequence[Datum], loss_fn: LossFnName
    ) -> Future[ForwardBackwardOutput]:
        """Like :meth:`forward_backward` without touching gradients (evaluation)."""
        try:
            _check_loss(datums, loss_fn)
            sdk_datums = self._sdk_datums(datums)
        except Exception as exc:
            return self._fail("forward", exc)

        def step() -> Finish:
            sdk = self._connected().forward(sdk_datums, loss_fn)
            return lambda: from_sdk_forward_backward(wait(sdk, self._timeout(), "forward"))

        return self._submit("forward", step)

    def forward_backward_custom(
        self, datums: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """Apply a numpy loss through a forward pass and a weighted ``cross_entropy`` backward.

        Each datum needs ``target_tokens`` (the tokens whose logprobs the loss sees).
        The two requests are submitted back to back on the dispatcher thread, so no
        later call reaches the server between them.

        Returns:
            A future of per-datum ``logprobs`` (from the forward pass) and ``loss_fn``'s
            metrics plus ``loss``. A failing ``loss_fn`` or a gradient of the wrong shape
            fails the future and leaves the gradients untouched.
        """
        try:
            if not datums:
                raise InvalidDataError("datums is empty; give at least one datum")
            for index, datum in enumerate(datums):
                if "target_tokens" not in datum.loss_fn_inputs:
                    raise ConfigurationError(
                        f"datums[{index}]: forward_backward_custom needs loss_fn_inputs "
                        "target_tokens (the tokens whose logprobs the loss receives)"
                    )
            forward_datums = [
                to_sdk_datum(self._tinker, datum, _forward_inputs(datum)) for datum in datums
            ]
        except Exception as exc:
            return self._fail("forward_backward_custom", exc)

        def step() -> Finish:
            client = self._connected()
            forward = wait(
                client.forward(forward_datums, "cross_entropy"),
                self._timeout(),
                "forward_backward_custom (forward)",
            )
            output = from_sdk_forward_backward(forward)
            logprobs = [
                np.array(out["logprobs"].to_numpy(), dtype=np.float32)
                for out in output.loss_fn_outputs
            ]
            loss, grads, metrics = _call_loss(loss_fn, datums, logprobs)
            backward_datums = [
                to_sdk_datum(
                    self._tinker,
                    datum,
                    {
                        "target_tokens": datum.loss_fn_inputs["target_tokens"],
                        "weights": TensorData.from_numpy(-grad),
                    },
                )
                for datum, grad in zip(datums, grads, strict=True)
            ]
            backward = client.forward_backward(backward_datums, "cross_entropy")

            def finish() -> ForwardBackwardOutput:
                wait(backward, self._timeout(), "forward_backward_custom (backward)")
                return ForwardBackwardOutput(
                    loss_fn_outputs=tuple(
                        {"logprobs": TensorData.from_numpy(lp)} for lp in logprobs
                    ),
                    metrics={**{k: float(v) for k, v in metrics.items()}, "loss": loss},
                )

            return finish

        return self._submit("forward_backward_custom", step)

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        """Apply one Adam step on the server with the accumulated gradients."""
        try:
            if not isinstance(params, AdamParams):
                raise InvalidDataError(f"params must be AdamParams, got {type(params).__name__}")
            sdk_params = to_sdk_adam_params(self._tinker, params)
        except Exception as exc:
            return self._fail("optim_step", exc)

        def step() -> Finish:
            # Positional: 0.16.x names it adam_params, 0.38 optim_params.
            sdk = self._connected().optim_step(sdk_params)
            return lambda: from_sdk_optim_step(wait(sdk, self._timeout(), "optim_step"))

        return self._submit("optim_step", step)

    def _fresh_name(self, kind: str, name: str) -> str:
        """``name``, or ``name-N`` when this client already saved this ``kind`` under it.

        Saved weights cannot be overwritten on a Tinker server (skyrl-tx answers a reused
        name with an error its SDK retries for minutes), while the loops reuse names for
        scratch sampler weights (``eval``, ``rl-sampler``); callers use the returned path.
        Runs on the dispatcher thread only.
        """
        count = self._saved_names.get((kind, name), 0) + 1
        self._saved_names[(kind, name)] = count
        return name if count == 1 else f"{name}-{count}"

    def save_state(self, name: str) -> Future[str]:
        """Save weights and optimiser state on the server; the future gives the
        ``tinker://`` path."""

        def step() -> Finish:
            sdk = self._connected().save_state(self._fresh_name("state", name))
            return lambda: str(wait(sdk, self._timeout(), "save_state").path)

        return self._submit("save_state", step)

    def load_state(self, path: str) -> Future[None]:
        """Restore weights and optimiser state from a ``tinker://`` path of :meth:`save_state`.

        On SDKs where ``load_state_with_optimizer`` is deprecated (0.38) the client is
        replaced by ``ServiceClient.create_training_client_from_state_with_optimizer``
        (a new model on the server); later calls go to it.
        """

        def step() -> Finish:
            client = self._connected()
            tinker = self._tinker
            if is_deprecated(tinker.TrainingClient.load_state_with_optimizer):
                created = self._service.create_training_client_from_state_with_optimizer(path)
                # The swap must happen before the next step is submitted: wait here.
                self._client = resolved(created, (tinker.TrainingClient,), self._timeout())
                return lambda: None
            sdk = client.load_state_with_optimizer(path)

            def finish() -> None:
                wait(sdk, self._timeout(), "load_state")

            return finish

        return self._submit("load_state", step)

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        """Save the current weights for sampling; the future gives the ``tinker://`` path."""

        def step() -> Finish:
            sdk = self._connected().save_weights_for_sampler(self._fresh_name("sampler", name))
            return lambda: str(wait(sdk, self._timeout(), "save_weights_for_sampler").path)

        return self._submit("save_weights_for_sampler", step)

    def create_sampling_client(self, path: str) -> TinkerSamplingClient:
        """A sampling client over ``path`` (from :meth:`save_weights_for_sampler`).

        It shares this client's session while in this process; a pickled copy opens
        its own.

        Raises:
            ConfigurationError: ``path`` is not a ``tinker://`` path.
        """
        values = _settings_dict(self._settings)
        values["model_path"] = path
        sampler = TinkerSamplingClient(**values)
        sampler._share_service(lambda: self._service)
        return sampler

    def close(self) -> None:
        """End the session after the calls already queued, then stop the dispatcher.

        Waits for that at most :data:`CLOSE_TIMEOUT_S` seconds (a session whose
        connection is still being retried is closed once it opens). Sampling clients
        made by :meth:`create_sampling_client` share the session and stop working too.
        Idempotent.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True

        def step() -> Finish:
            # Also a connection still being retried: its session is closed once it opens.
            self._connection.discard(lambda built: close_service(built[0]))
            return lambda: None

        closed = self._dispatcher.submit("close", step, self._translate)
        self._dispatcher.close()
        with contextlib.suppress(TimeoutError):
            closed.exception(timeout=CLOSE_TIMEOUT_S)

    def __enter__(self) -> TinkerTrainingClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _settings_dict(settings: TinkerSettings) -> dict[str, Any]:
    return {field.name: getattr(settings, field.name) for field in settings.__attrs_attrs__}


def _forward_inputs(datum: Datum) -> dict[str, TensorData]:
    """The inputs of the custom loss's forward pass: targets, and weights for the server."""
    targets = datum.loss_fn_inputs["target_tokens"]
    weights = datum.loss_fn_inputs.get("weights")
    if weights is None:
        weights = TensorData.from_numpy(np.ones(targets.shape[0], dtype=np.float32))
    return {"target_tokens": targets, "weights": weights}


def _call_loss(
    loss_fn: CustomLossFn, datums: Sequence[Datum], logprobs: list[npt.NDArray[np.float32]]
) -> tuple[float, list[npt.NDArray[np.float32]], Mapping[str, float]]:
    """Run the user's loss and check its gradients against the logprob shapes."""
    try:
        loss, grads, metrics = loss_fn(datums, logprobs)
    except Exception as exc:
        raise TrainingClientError(
            f"forward_backward_custom: the loss function failed: {type(exc).__name__}: {exc}"
        ) from exc
    grads = [np.asarray(grad, dtype=np.float32) for grad in grads]
    if len(grads) != len(logprobs):
        raise InvalidDataError(
            f"forward_backward_custom: the loss returned {len(grads)} gradients for "
            f"{len(logprobs)} datums"
        )
    for index, (grad, lp) in enumerate(zip(grads, logprobs, strict=True)):
        if grad.shape != lp.shape or not np.all(np.isfinite(grad)):
            raise InvalidDataError(
                f"forward_backward_custom: gradient {index} has shape {list(grad.shape)} "
                f"(logprobs {list(lp.shape)}) or non-finite values"
            )
    return float(loss), grads, dict(metrics)
