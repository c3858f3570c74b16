"""The edge to the ``tinker`` SDK: lazy import, building clients across SDK versions,
converting our value types to the SDK's and back, and translating SDK exceptions.

SDK versions bridged here (checked against 0.16.1 and 0.38.0):

* ``ServiceClient(**kwargs)`` forwards unknown keywords (``timeout``, ``max_retries``,
  ``http_client``) to the HTTP client in 0.16.x; 0.38 ignores them with a warning, so they
  are passed only where the constructor takes ``**kwargs`` without a ``display_name``.
* ``create_lora_training_client`` / ``create_sampling_client`` return the client in
  0.16.x and a future of it in 0.38: :func:`resolved` normalises.
* ``TrainingClient.load_state*`` are deprecated in 0.38 in favour of
  ``ServiceClient.create_training_client_from_state*``: :func:`is_deprecated` decides.
* ``compute_logprobs`` gives ``prompt.length`` values with a leading ``None`` on the
  hosted service and ``length - 1`` values without it on skyrl-tx:
  :func:`normalise_prompt_logprobs` returns our contract's form either way.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np

from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.errors import (
    AdapterUnavailableError,
    BackendAuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendRequestError,
    BackendTimeoutError,
    ConfigurationError,
    CrucibleError,
    InvalidDataError,
    PortError,
)
from crucible_train.types import (
    AdamParams,
    Datum,
    EncodedTextChunk,
    ForwardBackwardOutput,
    ModelInput,
    OptimStepResponse,
    SampleResponse,
    SamplingParams,
    TensorData,
    TokensWithLogprobs,
)

__all__ = [
    "CLOSE_TIMEOUT_S",
    "INSTALL_COMMAND",
    "close_service",
    "from_sdk_forward_backward",
    "from_sdk_optim_step",
    "from_sdk_sample_response",
    "import_tinker",
    "is_deprecated",
    "new_service_client",
    "normalise_prompt_logprobs",
    "resolve_settings",
    "resolved",
    "to_sdk_adam_params",
    "to_sdk_datum",
    "to_sdk_model_input",
    "to_sdk_sampling_params",
    "translate",
    "wait",
]

INSTALL_COMMAND: Final = "pip install 'crucible-train[tinker]'"

CLOSE_TIMEOUT_S: Final = 10.0
"""Longest wait of a client's ``close()`` for its session to end."""

http_client_factories: dict[str, Callable[[], Any]] = {}
"""Test hook (not a setting): base URL → a function returning the ``httpx.AsyncClient``
the SDK must use for that URL, e.g. one over an in-process ``httpx.MockTransport``.
Keyed by URL so a registration can never divert clients of any other server."""


def _factory_for(base_url: object) -> Callable[[], Any] | None:
    return http_client_factories.get(str(base_url).rstrip("/")) if http_client_factories else None


_PATCH_LOCK = threading.Lock()
_LOG = logging.getLogger(__name__)


def import_tinker(port: str) -> Any:
    """The ``tinker`` module, or an install hint.

    Raises:
        AdapterUnavailableError: the SDK is not installed; names the extra and the
            ``<port>.backend: noop`` fallback.
    """
    try:
        return importlib.import_module("tinker")
    except ImportError as exc:
        raise AdapterUnavailableError(
            f"the tinker backend needs the tinker SDK, which cannot be imported ({exc}); "
            f"install it with `{INSTALL_COMMAND}`, or select another backend such as "
            f"`{port}.backend: noop`"
        ) from exc


def resolve_settings(values: Mapping[str, Any]) -> TinkerSettings:
    """Validate adapter keyword arguments into :class:`TinkerSettings`.

    Raises:
        ConfigurationError: a value is invalid or ``base_model`` / ``api_key`` is unset
            (messages never show the key).
    """
    try:
        settings = TinkerSettings(**values)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None
    problems = []
    if settings.base_model is None:
        problems.append("base_model: required for the tinker backend (the model to train)")
    if not settings.api_key:
        problems.append("api_key: unset; set the environment variable TINKER_API_KEY")
    if problems:
        raise ConfigurationError(*problems)
    return settings


def _takes_http_kwargs(tinker: Any) -> bool:
    # 0.16.x: ServiceClient(user_metadata, project_id, **kwargs) passes kwargs through to
    # the HTTP client. 0.38 has explicit keywords (display_name, ...) and drops the rest.
    parameters = inspect.signature(tinker.ServiceClient.__init__).parameters
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return var_keyword and "display_name" not in parameters


def _install_http_hook() -> None:
    """Make every ``AsyncTinker`` the 0.38 SDK builds take its HTTP client from the hook.

    0.38 offers no constructor argument for the HTTP client, so the test hook replaces
    the class its connection pools instantiate by a subclass that consults
    :data:`http_client_factories` (and changes nothing for unregistered URLs).
    """
    holder: Any = importlib.import_module("tinker.lib.internal_client_holder")
    with _PATCH_LOCK:
        base = holder.AsyncTinker
        if getattr(base, "_crucible_hooked", False):
            return

        class _HookedAsyncTinker(base):  # type: ignore[misc, valid-type]
            _crucible_hooked = True

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                factory = _factory_for(kwargs.get("base_url"))
                if factory is not None and kwargs.get("http_client") is None:
                    kwargs["http_client"] = factory()
                super().__init__(*args, **kwargs)

        holder.AsyncTinker = _HookedAsyncTinker


def new_service_client(tinker: Any, settings: TinkerSettings) -> Any:
    """A ``tinker.ServiceClient`` for ``settings`` (blocks on 0.16.x: it opens a session).

    ``request_timeout_s`` and ``max_retries`` are passed only to SDKs that accept them.
    """
    kwargs: dict[str, Any] = {"api_key": settings.api_key}
    if settings.base_url is not None:
        kwargs["base_url"] = settings.base_url
    if _takes_http_kwargs(tinker):
        if settings.request_timeout_s is not None:
            kwargs["timeout"] = settings.request_timeout_s
        if settings.max_retries is not None:
            kwargs["max_retries"] = settings.max_retries
        factory = _factory_for(settings.base_url)
        if factory is not None:
            kwargs["http_client"] = factory()
    elif _factory_for(settings.base_url) is not None:
        _install_http_hook()
    return tinker.ServiceClient(**kwargs)


def close_service(service: Any, timeout: float = 5.0) -> None:
    """End a ``ServiceClient``'s session, best effort and bounded (never raises).

    0.38: ``close("success")`` finishes the session on the server and stops heartbeats;
    0.16.x has no ``close`` and only stops its holder's heartbeat loop.
    """
    try:
        close = getattr(service, "close", None)
        if callable(close):
            close("success").result(timeout=timeout)
            return
        holder = getattr(service, "holder", None)
        if holder is not None and callable(getattr(holder, "close", None)):
            holder.close()
            _close_connection_pools(holder, timeout)
    except Exception as exc:  # a server without the endpoint, or gone: nothing to undo
        _LOG.debug("closing the Tinker session failed: %s", type(exc).__name__)


def _close_connection_pools(holder: Any, timeout: float) -> None:
    """Close 0.16.x's pooled HTTP clients, which its ``close`` leaves open (their sockets
    would outlive the client and warn as unclosed resources)."""
    pools = getattr(holder, "_client_pools", None)
    run = getattr(holder, "run_coroutine_threadsafe", None)
    if not isinstance(pools, dict) or not callable(run):
        return
    clients = [c for pool in pools.values() for c in getattr(pool, "_clients", [])]

    async def close_all() -> None:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()

    run(close_all()).result(timeout=timeout)


def is_deprecated(function: Any) -> bool:
    """Whether an SDK method carries the ``@deprecated`` marker (0.38's ``load_state``)."""
    return getattr(function, "__deprecated__", None) is not None


def resolved(value: Any, client_types: tuple[type, ...], timeout: float | None) -> Any:
    """The client itself: 0.16.x returns it, 0.38 a future of it.

    0.38's futures subclass the client types (for backwards compatibility, with a
    warning on use), so the test is whether the class has ``result``, not ``isinstance``.
    """
    if callable(getattr(type(value), "result", None)):
        return value.result(timeout=timeout)
    if not isinstance(value, client_types):
        raise TypeError(f"the SDK returned a {type(value).__name__}, not a client")
    return value


def wait(future: Any, timeout: float | None, operation: str) -> Any:
    """The SDK future's result within ``timeout`` seconds.

    Raises:
        BackendTimeoutError: no result in time (the SDK may still be retrying).
    """
    start = time.monotonic()
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        # Ours when the wait lasted the whole timeout; otherwise the SDK's own timeout.
        # (0.38 deprecates .done() on some futures, so the elapsed time decides.)
        if timeout is not None and time.monotonic() - start >= timeout * 0.99:
            raise BackendTimeoutError(
                f"{operation}: no result within future_timeout_s={timeout:g} s; the server "
                "may be overloaded or unreachable (the SDK keeps retrying)"
            ) from None
        raise


# --- errors ----------------------------------------------------------------------------

_KEY_PATTERN: Final = re.compile(r"tml-[A-Za-z0-9_\-]+")


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("tml-***", text)


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        for key in ("detail", "error", "message"):
            if body.get(key):
                return str(body[key])
    message = getattr(exc, "message", None)
    return str(message or exc)


def translate(
    exc: BaseException,
    operation: str,
    *,
    fallback: type[PortError],
    secret: str | None = None,
) -> BaseException:
    """The typed error a future fails with, for any exception an SDK call raised.

    The one place that knows the SDK's exception classes (the same names in 0.16.x and
    0.38). Our own errors pass through unchanged; the API key is removed from every
    message.

    Args:
        exc: what the SDK (or our conversion code) raised.
        operation: what was being done, for the message (``forward_backward``).
        fallback: the port's error class for anything unrecognised.
        secret: the API key to scrub from messages.
    """
    if isinstance(exc, CrucibleError):
        return exc
    tinker = importlib.import_module("tinker")
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    error: PortError
    if isinstance(exc, tinker.AuthenticationError | tinker.PermissionDeniedError):
        error = BackendAuthenticationError(
            _scrub(
                f"{operation}: the server rejected the API key ({status}): {_server_message(exc)}",
                secret,
            )
        )
    elif isinstance(exc, tinker.APITimeoutError):
        error = BackendTimeoutError(_scrub(f"{operation}: request timed out: {exc}", secret))
    elif isinstance(exc, tinker.APIConnectionError):
        error = BackendConnectionError(
            _scrub(f"{operation}: cannot reach the Tinker server: {_cause_text(exc)}", secret)
        )
    elif isinstance(exc, tinker.APIStatusError) and status is not None and 400 <= status < 500:
        error = BackendRequestError(
            _scrub(
                f"{operation}: the server rejected the request ({status}): {_server_message(exc)}",
                secret,
            )
        )
    elif isinstance(exc, tinker.APIStatusError):
        error = fallback(
            _scrub(f"{operation}: server error ({status}): {_server_message(exc)}", secret)
        )
    elif isinstance(exc, tinker.RequestFailedError):
        error = BackendRequestError(_scrub(f"{operation}: the request failed: {exc}", secret))
    elif isinstance(exc, tinker.TinkerError) and "api_key" in str(exc).lower().replace(" ", "_"):
        # The SDK refuses a malformed key locally, before any request.
        error = BackendAuthenticationError(_scrub(f"{operation}: {exc}", secret))
    elif isinstance(exc, TimeoutError):
        error = BackendTimeoutError(_scrub(f"{operation}: timed out: {exc}", secret))
    else:
        error = fallback(_scrub(f"{operation} failed: {name}: {exc}", secret))
    if isinstance(error, BackendError):
        error.status = status if isinstance(status, int) else None
    error.__cause__ = exc if secret is None or secret not in str(exc) else None
    return error


def _cause_text(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{exc} ({cause})" if cause is not None and str(cause) else str(exc)


# --- our types -> the SDK's -------------------------------------------------------------


def to_sdk_model_input(tinker: Any, model_input: ModelInput) -> Any:
    """Our :class:`ModelInput` as ``tinker.types.ModelInput``."""
    types = tinker.types
    chunks: list[Any] = []
    for chunk in model_input.chunks:
        if isinstance(chunk, EncodedTextChunk):
            chunks.append(types.EncodedTextChunk(tokens=list(chunk.tokens)))
        else:
            chunks.append(
                types.ImageChunk(
                    data=chunk.data, format=chunk.format, expected_tokens=chunk.expected_tokens
                )
            )
    return types.ModelInput(chunks=chunks)


def _to_sdk_tensor(tinker: Any, tensor: TensorData) -> Any:
    return tinker.types.TensorData(
        data=tensor.array.reshape(-1).tolist(), dtype=tensor.dtype, shape=list(tensor.shape)
    )


def to_sdk_datum(tinker: Any, datum: Datum, inputs: Mapping[str, TensorData] | None = None) -> Any:
    """Our :class:`Datum` (optionally with replaced ``loss_fn_inputs``) as the SDK's."""
    chosen = datum.loss_fn_inputs if inputs is None else inputs
    return tinker.types.Datum(
        model_input=to_sdk_model_input(tinker, datum.model_input),
        loss_fn_inputs={key: _to_sdk_tensor(tinker, value) for key, value in chosen.items()},
    )


def to_sdk_adam_params(tinker: Any, params: AdamParams) -> Any:
    """Our :class:`AdamParams` as the SDK's (same fields in 0.16.x and 0.38)."""
    return tinker.types.AdamParams(**attrs.asdict(params))


def to_sdk_sampling_params(tinker: Any, params: SamplingParams) -> Any:
    """Our :class:`SamplingParams` as the SDK's; an empty ``stop`` keeps EOS stopping."""
    return tinker.types.SamplingParams(
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        seed=params.seed,
        stop=list(params.stop) if params.stop else None,
    )


# --- the SDK's types -> ours ------------------------------------------------------------


def _from_sdk_tensor(tensor: Any) -> TensorData:
    array = np.asarray(tensor.to_numpy())
    shape = getattr(tensor, "shape", None)
    if shape is not None:
        array = array.reshape(tuple(shape))
    return TensorData.from_numpy(array)


def from_sdk_forward_backward(output: Any) -> ForwardBackwardOutput:
    """The SDK's ``ForwardBackwardOutput`` as ours (per-datum tensors, float metrics)."""
    return ForwardBackwardOutput(
        loss_fn_outputs=tuple(
            {key: _from_sdk_tensor(value) for key, value in per_datum.items()}
            for per_datum in output.loss_fn_outputs
        ),
        metrics={key: float(value) for key, value in (output.metrics or {}).items()},
    )


def from_sdk_optim_step(response: Any) -> OptimStepResponse:
    """The SDK's ``OptimStepResponse`` (``metrics`` may be ``None``) as ours."""
    metrics = getattr(response, "metrics", None) or {}
    return OptimStepResponse(metrics={key: float(value) for key, value in metrics.items()})


def from_sdk_sample_response(response: Any) -> SampleResponse:
    """The SDK's ``SampleResponse`` as ours (stop reasons ``stop``/``length``)."""
    sequences = []
    for sequence in response.sequences:
        logprobs = sequence.logprobs
        sequences.append(
            TokensWithLogprobs(
                tokens=[int(token) for token in sequence.tokens],
                logprobs=None if logprobs is None else [float(v) for v in logprobs],
                stop_reason=str(sequence.stop_reason),  # type: ignore[arg-type]
            )
        )
    # attrs types the tuple converter as Iterable[_T_co]; mypy cannot bind it here.
    return SampleResponse(sequences=sequences)  # type: ignore[arg-type]


def normalise_prompt_logprobs(values: Sequence[float | None], length: int) -> list[float | None]:
    """``length`` values with ``None`` first, from either server convention.

    Raises:
        InvalidDataError: the server returned a number of values that fits neither.
    """
    out = [None if value is None else float(value) for value in values]
    if len(out) == length - 1:
        out = [None, *out]  # skyrl-tx omits the leading None
    if len(out) != length:
        raise InvalidDataError(
            f"compute_logprobs: the server returned {len(values)} values for a prompt of "
            f"{length} tokens; expected {length} (or {length - 1})"
        )
    out[0] = None
    return out
