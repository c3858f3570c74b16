"""What a custom loss function must return to ``forward_backward_custom``, checked.

The local PyTorch engine calls ``loss_fn(datums, logprobs)`` with one float32 array of
target logprobs per datum; it must return ``(loss, grads, metrics)``: a number, one
finite gradient array per datum shaped like its logprobs, and a mapping of metric name to
number. :func:`check_custom_result` refuses anything else with a
:class:`~crucible_train.errors.ConfigurationError` that names what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.errors import ConfigurationError

__all__ = ["check_custom_result"]


def check_custom_result(
    operation: str, result: Any, logprobs: Sequence[npt.NDArray[np.float32]]
) -> tuple[float, list[npt.NDArray[np.float32]], dict[str, float]]:
    """Validate ``(loss, grads, metrics)`` from a custom loss; grads become float32."""
    if not isinstance(result, tuple | list) or len(result) != 3:
        raise ConfigurationError(
            f"{operation}: the loss function must return (loss, grads, metrics), "
            f"got {type(result).__name__}"
        )
    loss, grads, metrics = result
    try:
        loss_value = float(loss)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{operation}: the loss function's loss must be a number, got {type(loss).__name__}"
        ) from None
    if isinstance(grads, str | bytes) or not isinstance(grads, Sequence):
        raise ConfigurationError(
            f"{operation}: the loss function's grads must be a list of arrays, one per datum, "
            f"got {type(grads).__name__}"
        )
    if len(grads) != len(logprobs):
        raise ConfigurationError(
            f"{operation}: the loss function returned {len(grads)} gradient arrays for "
            f"{len(logprobs)} datums"
        )
    checked: list[npt.NDArray[np.float32]] = []
    for index, (grad, expected) in enumerate(zip(grads, logprobs, strict=True)):
        try:
            array = np.asarray(grad, dtype=np.float32)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{operation}: the gradient for datum {index} is not numeric"
            ) from None
        if array.shape != expected.shape:
            raise ConfigurationError(
                f"{operation}: the gradient for datum {index} has shape {list(array.shape)}; "
                f"expected {list(expected.shape)}, the shape of its logprobs"
            )
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise ConfigurationError(
                f"{operation}: the gradient for datum {index} has a non-finite value "
                f"({array[int(bad[0])]} at position {int(bad[0])})"
            )
        checked.append(array)
    if not isinstance(metrics, Mapping):
        raise ConfigurationError(
            f"{operation}: the loss function's metrics must be a mapping of name to number, "
            f"got {type(metrics).__name__}"
        )
    converted: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            converted[str(key)] = float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{operation}: metric {key!r} from the loss function is not a number"
            ) from None
    return loss_value, checked, converted
