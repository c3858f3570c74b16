"""Value types every layer speaks: model inputs, tensors, datums, optimiser and sampling
parameters, and the results training and sampling backends return.

This is the shared vocabulary of the ports, the core loops and the adapters (it imports
only attrs, numpy and :mod:`crucible_train.errors`). All classes are frozen and
keyword-only; invariants are checked at construction and broken ones raise
:class:`~crucible_train.errors.InvalidDataError` naming the field.

Shapes follow the Tinker convention for next-token training: a datum's ``model_input``
holds tokens ``t[0:T]`` and every per-token loss input (``target_tokens``, ``weights``,
``logprobs``, ``advantages``) has length ``T`` and refers to the token predicted at each
position (``t[1:T+1]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.errors import InvalidDataError

__all__ = [
    "LOSS_FN_NAMES",
    "AdamParams",
    "Datum",
    "EncodedTextChunk",
    "ForwardBackwardOutput",
    "ImageChunk",
    "LossFnName",
    "ModelInput",
    "ModelInputChunk",
    "OptimStepResponse",
    "SampleResponse",
    "SamplingParams",
    "StopReason",
    "TensorData",
    "TensorDtype",
    "TokensWithLogprobs",
]

TensorDtype: TypeAlias = Literal["int64", "float32"]
StopReason: TypeAlias = Literal["stop", "length"]
LossFnName: TypeAlias = Literal["cross_entropy", "importance_sampling", "ppo", "cispo", "dro"]
LOSS_FN_NAMES: tuple[LossFnName, ...] = (
    "cross_entropy",
    "importance_sampling",
    "ppo",
    "cispo",
    "dro",
)

_IMAGE_FORMATS = ("png", "jpeg")


_PLAIN_INT = frozenset((int,))


def _token_tuple(values: Iterable[int]) -> tuple[int, ...]:
    """Coerce an iterable of token ids to a tuple of Python ints, refusing non-integers."""
    if type(values) is list or type(values) is tuple:
        # Fast path (C-level loops): a list/tuple of plain, non-negative Python ints.
        if not values:
            return ()
        if set(map(type, values)) == _PLAIN_INT and min(values) >= 0:
            return tuple(values)
    out: list[int] = []
    for position, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidDataError(
                f"token at position {position} is {value!r} ({type(value).__name__}); "
                "token ids must be whole numbers"
            )
        if value < 0:
            raise InvalidDataError(f"token at position {position} is {value}; ids are >= 0")
        out.append(int(value))
    return tuple(out)


# --- model input ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EncodedTextChunk:
    """A run of already-tokenised text."""

    tokens: tuple[int, ...] = attrs.field(converter=_token_tuple)

    @property
    def length(self) -> int:
        """Number of token positions this chunk occupies."""
        return len(self.tokens)


@attrs.frozen(kw_only=True)
class ImageChunk:
    """An encoded image that the model's vision tower turns into ``expected_tokens`` positions.

    ``data`` holds the image file's bytes (``png`` or ``jpeg``); ``expected_tokens`` is how
    many positions the image occupies in the sequence, which the renderer must know.
    """

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    format: Literal["png", "jpeg"]
    expected_tokens: int

    def __attrs_post_init__(self) -> None:
        if self.format not in _IMAGE_FORMATS:
            raise InvalidDataError(
                f"ImageChunk.format is {self.format!r}; valid formats: {', '.join(_IMAGE_FORMATS)}"
            )
        if isinstance(self.expected_tokens, bool) or not isinstance(self.expected_tokens, int):
            raise InvalidDataError("ImageChunk.expected_tokens must be a whole number")
        if self.expected_tokens <= 0:
            raise InvalidDataError(
                f"ImageChunk.expected_tokens is {self.expected_tokens}; it must be positive"
            )

    @property
    def length(self) -> int:
        """Number of token positions this image occupies."""
        return self.expected_tokens


ModelInputChunk: TypeAlias = EncodedTextChunk | ImageChunk


def _chunk_tuple(chunks: Iterable[ModelInputChunk]) -> tuple[ModelInputChunk, ...]:
    out = tuple(chunks)
    for index, chunk in enumerate(out):
        if not isinstance(chunk, EncodedTextChunk | ImageChunk):
            raise InvalidDataError(
                f"ModelInput.chunks[{index}] is a {type(chunk).__name__}; "
                "expected EncodedTextChunk or ImageChunk"
            )
    return out


@attrs.frozen(kw_only=True)
class ModelInput:
    """The sequence a model reads: text token runs and images, in order."""

    chunks: tuple[ModelInputChunk, ...] = attrs.field(factory=tuple, converter=_chunk_tuple)

    @classmethod
    def empty(cls) -> ModelInput:
        """An input with no positions."""
        return cls(chunks=())

    @classmethod
    def from_ints(cls, tokens: Iterable[int]) -> ModelInput:
        """Wrap a list of token ids as a one-chunk text input."""
        return cls(chunks=(EncodedTextChunk(tokens=tokens),))

    def to_ints(self) -> list[int]:
        """All token ids in order.

        Raises:
            InvalidDataError: the input contains an image, which has no token ids.
        """
        out: list[int] = []
        for index, chunk in enumerate(self.chunks):
            if isinstance(chunk, ImageChunk):
                raise InvalidDataError(
                    f"ModelInput.to_ints: chunk {index} is an image and has no token ids; "
                    "iterate over .chunks instead"
                )
            out.extend(chunk.tokens)
        return out

    @property
    def length(self) -> int:
        """Number of positions, counting each image as its ``expected_tokens``."""
        return sum(chunk.length for chunk in self.chunks)

    def append(self, chunk: ModelInputChunk) -> ModelInput:
        """A new input with ``chunk`` added at the end (adjacent text runs are merged)."""
        if (
            isinstance(chunk, EncodedTextChunk)
            and self.chunks
            and isinstance(self.chunks[-1], EncodedTextChunk)
        ):
            merged = EncodedTextChunk(tokens=self.chunks[-1].tokens + chunk.tokens)
            return ModelInput(chunks=(*self.chunks[:-1], merged))
        return ModelInput(chunks=(*self.chunks, chunk))

    def append_int(self, token: int) -> ModelInput:
        """A new input with one more token at the end."""
        return self.append(EncodedTextChunk(tokens=(token,)))


# --- tensors ------------------------------------------------------------------------------


def _frozen_array(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # Copy so that making it read-only never changes an array the caller still owns.
    frozen = np.array(array, copy=True, order="C")
    frozen.setflags(write=False)
    return frozen


@attrs.frozen(kw_only=True, eq=False)
class TensorData:
    """A dense numpy-backed tensor of ``int64`` or ``float32`` values.

    Build it with :meth:`from_numpy` or :meth:`from_list`; the array is stored read-only so
    a frozen datum cannot change under a caller's feet.
    """

    array: npt.NDArray[Any] = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise InvalidDataError(
                f"TensorData.array must be a numpy array, got {type(self.array).__name__}; "
                "use TensorData.from_list for Python lists"
            )
        if self.array.dtype not in (np.dtype(np.int64), np.dtype(np.float32)):
            raise InvalidDataError(
                f"TensorData dtype {self.array.dtype} is not supported; "
                "valid dtypes: int64, float32 (use TensorData.from_numpy to convert)"
            )
        object.__setattr__(self, "array", _frozen_array(self.array))

    @classmethod
    def from_numpy(cls, array: npt.ArrayLike) -> TensorData:
        """Convert an array: any integer dtype becomes int64, any float dtype float32.

        Raises:
            InvalidDataError: booleans, complex numbers, strings or objects.
        """
        arr = np.asarray(array)
        if arr.dtype.kind in "iu":
            return cls(array=arr.astype(np.int64, copy=False))
        if arr.dtype.kind == "f":
            return cls(array=arr.astype(np.float32, copy=False))
        raise InvalidDataError(
            f"TensorData dtype {arr.dtype} is not supported; "
            "valid dtypes: integers (stored as int64) or floats (stored as float32)"
        )

    @classmethod
    def from_list(
        cls,
        data: Sequence[Any],
        *,
        dtype: TensorDtype,
        shape: Sequence[int] | None = None,
    ) -> TensorData:
        """Build from a (flat or nested) Python list, as the Tinker wire format carries it.

        Args:
            data: the values; flat when ``shape`` is given.
            dtype: ``"int64"`` or ``"float32"``.
            shape: optional shape to reshape the flat data into.
        """
        if dtype not in ("int64", "float32"):
            raise InvalidDataError(
                f"TensorData dtype {dtype!r} is not supported; valid dtypes: int64, float32"
            )
        try:
            arr = np.asarray(data, dtype=np.dtype(dtype))
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(f"TensorData values are not {dtype}: {exc}") from exc
        if shape is not None:
            try:
                arr = arr.reshape(tuple(shape))
            except ValueError as exc:
                raise InvalidDataError(
                    f"TensorData: {arr.size} values do not fit shape {list(shape)}"
                ) from exc
        return cls(array=arr)

    @property
    def dtype(self) -> TensorDtype:
        """``"int64"`` or ``"float32"``."""
        return "int64" if self.array.dtype == np.int64 else "float32"

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return tuple(int(dim) for dim in self.array.shape)

    def to_numpy(self) -> npt.NDArray[Any]:
        """The values as a read-only numpy array (no copy)."""
        return self.array

    def tolist(self) -> list[Any]:
        """The values as nested Python lists."""
        result: list[Any] = self.array.tolist()
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorData):
            return NotImplemented
        return self.array.dtype == other.array.dtype and bool(
            np.array_equal(self.array, other.array)
        )

    def __repr__(self) -> str:
        return f"TensorData(dtype={self.dtype!r}, shape={list(self.shape)})"

    __hash__ = None  # type: ignore[assignment]


def _tensor_mapping(values: Mapping[str, Any]) -> Mapping[str, TensorData]:
    if not isinstance(values, Mapping):
        raise InvalidDataError(
            f"Datum.loss_fn_inputs must be a mapping of name to tensor, got {type(values).__name__}"
        )
    out: dict[str, TensorData] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise InvalidDataError(f"Datum.loss_fn_inputs key {key!r} is not a string")
        out[key] = value if isinstance(value, TensorData) else TensorData.from_numpy(value)
    return out


# --- datums -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class Datum:
    """One training example: the model input and the per-token inputs of the loss.

    Every entry of ``loss_fn_inputs`` must have ``model_input.length`` as its first
    dimension. Plain numpy arrays and lists are converted to :class:`TensorData`.
    """

    model_input: ModelInput
    loss_fn_inputs: Mapping[str, TensorData] = attrs.field(factory=dict, converter=_tensor_mapping)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.model_input, ModelInput):
            raise InvalidDataError(
                f"Datum.model_input must be a ModelInput, got {type(self.model_input).__name__}"
            )
        length = self.model_input.length
        for key, tensor in self.loss_fn_inputs.items():
            if not tensor.shape or tensor.shape[0] != length:
                raise InvalidDataError(
                    f"Datum.loss_fn_inputs[{key!r}] has shape {list(tensor.shape)} but "
                    f"model_input has {length} positions; every loss input needs "
                    f"{length} as its first dimension"
                )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Datum):
            return NotImplemented
        return self.model_input == other.model_input and dict(self.loss_fn_inputs) == dict(
            other.loss_fn_inputs
        )

    __hash__ = None  # type: ignore[assignment]


# --- sampling -----------------------------------------------------------------------------


def _optional_float_tuple(values: Iterable[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


@attrs.frozen(kw_only=True)
class TokensWithLogprobs:
    """A sampled continuation: its tokens, their log-probabilities and why it stopped.

    ``logprobs`` is ``None`` when the backend did not report them; otherwise it has one
    entry per token. ``stop_reason`` is ``"stop"`` (a stop sequence or end-of-sequence
    token) or ``"length"`` (``max_tokens`` reached).
    """

    tokens: tuple[int, ...] = attrs.field(converter=_token_tuple)
    logprobs: tuple[float, ...] | None = attrs.field(default=None, converter=_optional_float_tuple)
    stop_reason: StopReason | None = None

    def __attrs_post_init__(self) -> None:
        if self.logprobs is not None and len(self.logprobs) != len(self.tokens):
            raise InvalidDataError(
                f"TokensWithLogprobs has {len(self.tokens)} tokens but "
                f"{len(self.logprobs)} logprobs; they must have equal length"
            )
        if self.stop_reason not in (None, "stop", "length"):
            raise InvalidDataError(
                f"stop_reason is {self.stop_reason!r}; valid values: 'stop', 'length', None"
            )

    def require_logprobs(self) -> tuple[float, ...]:
        """The log-probabilities, or an error when the backend did not return them."""
        if self.logprobs is None:
            raise InvalidDataError(
                "this sample carries no logprobs; the sampling backend must report them"
            )
        return self.logprobs


@attrs.frozen(kw_only=True)
class SampleResponse:
    """What :meth:`SamplingClient.sample` returns: one sequence per requested sample.

    ``prompt_logprobs``, when asked for, has one entry per prompt position; the first is
    ``None`` because nothing predicts the first token.
    """

    sequences: tuple[TokensWithLogprobs, ...] = attrs.field(converter=tuple)
    prompt_logprobs: tuple[float | None, ...] | None = None


def _stop_tuple(
    value: str | Iterable[str] | Iterable[int] | None,
) -> tuple[str, ...] | tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    items = tuple(value)
    if all(isinstance(item, str) for item in items):
        return tuple(str(item) for item in items)
    return _token_tuple(items)  # type: ignore[arg-type]


@attrs.frozen(kw_only=True)
class SamplingParams:
    """How to sample a continuation.

    Args:
        max_tokens: most new tokens to generate; ``None`` lets the backend decide.
        temperature: 0 samples greedily; 1 samples the model's distribution.
        top_p: nucleus probability mass kept, in (0, 1].
        top_k: number of most likely tokens kept; -1 keeps all.
        stop: stop strings or stop token ids (not mixed); the stop text is included in the
            returned tokens, as Tinker does.
        seed: makes sampling reproducible on backends that support it.
    """

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    stop: tuple[str, ...] | tuple[int, ...] = attrs.field(default=(), converter=_stop_tuple)
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens <= 0
        ):
            problems.append(f"max_tokens is {self.max_tokens!r}; use a positive whole number")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            problems.append(f"temperature is {self.temperature!r}; use a finite value >= 0")
        if not (0.0 < self.top_p <= 1.0):
            problems.append(f"top_p is {self.top_p!r}; use a value in (0, 1]")
        if (
            isinstance(self.top_k, bool)
            or not isinstance(self.top_k, int)
            or (self.top_k != -1 and self.top_k < 1)
        ):
            problems.append(f"top_k is {self.top_k!r}; use -1 (all tokens) or a whole number >= 1")
        if problems:
            raise InvalidDataError(*(f"SamplingParams.{p}" for p in problems))


# --- optimisation -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AdamParams:
    """AdamW hyper-parameters for one optimiser step (defaults follow the Tinker API).

    Args:
        learning_rate: step size (already multiplied by the schedule).
        beta1, beta2: moment decay rates, each in [0, 1).
        eps: added to the denominator, > 0.
        weight_decay: decoupled weight decay, >= 0.
        grad_clip_norm: clip the global gradient norm to this value; 0 disables clipping.
    """

    learning_rate: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-12
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0

    def __attrs_post_init__(self) -> None:
        checks = (
            ("learning_rate", self.learning_rate >= 0, ">= 0"),
            ("beta1", 0.0 <= self.beta1 < 1.0, "in [0, 1)"),
            ("beta2", 0.0 <= self.beta2 < 1.0, "in [0, 1)"),
            ("eps", self.eps > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("grad_clip_norm", self.grad_clip_norm >= 0, ">= 0 (0 disables clipping)"),
        )
        problems = [
            f"AdamParams.{name} is {getattr(self, name)!r}; use a finite value {rule}"
            for name, ok, rule in checks
            if not (ok and math.isfinite(getattr(self, name)))
        ]
        if problems:
            raise InvalidDataError(*problems)


# --- backend results --------------------------------------------------------------------


def _output_tuple(
    outputs: Iterable[Mapping[str, TensorData]],
) -> tuple[Mapping[str, TensorData], ...]:
    # A typed converter: with a bare ``tuple`` mypy cannot solve the element type.
    return tuple(outputs)


@attrs.frozen(kw_only=True)
class ForwardBackwardOutput:
    """Result of a forward or forward-backward pass.

    ``loss_fn_outputs`` has one mapping per datum, in input order, holding at least
    ``logprobs`` (float32, one per position) and, for built-in losses,
    ``elementwise_loss``. ``metrics`` are summed over the batch (``loss:sum`` ...).
    """

    loss_fn_outputs: tuple[Mapping[str, TensorData], ...] = attrs.field(converter=_output_tuple)
    metrics: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class OptimStepResponse:
    """Result of an optimiser step: backend metrics such as the gradient norm."""

    metrics: Mapping[str, float] = attrs.field(factory=dict)
