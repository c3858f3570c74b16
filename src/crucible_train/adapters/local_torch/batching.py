"""Datums checked and padded into one forward pass (the local PyTorch engine's batches).

:meth:`DatumBatcher.prepare` validates every datum completely (a ``Datum``, no images, not
empty or too long, token ids inside the vocabulary, exactly the loss's input keys,
``target_tokens`` and float inputs of matching shapes, finite) before it builds any tensor,
so a call refused for bad input never reaches the model.

Datums of different lengths are right-padded into one :class:`Batch` with an attention
mask; :func:`target_logprobs` scores only real positions, and :func:`per_datum` gives the
results back per datum without padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.errors import ConfigurationError, InvalidDataError
from crucible_train.types import Datum, ImageChunk, TensorData

if TYPE_CHECKING:
    import torch

__all__ = ["Batch", "DatumBatcher", "per_datum", "target_logprobs"]


@attrs.frozen(kw_only=True)
class Batch:
    """Validated datums as tensors; ``N`` = total real positions, ``K`` = targets each."""

    input_ids: torch.Tensor  # (B, T_max) int64, right-padded with 0
    attention_mask: torch.Tensor | None  # (B, T_max); None when no datum is padded
    positions: torch.Tensor  # (B, T_max) bool: real (not padding) positions
    targets: torch.Tensor  # (N, K) int64
    inputs: dict[str, torch.Tensor]  # float32 loss inputs, (N,) or (N, K)
    lengths: tuple[int, ...]  # positions per datum
    per_position: int | None  # K when targets are (T, K); None for (T,)


@attrs.frozen(kw_only=True)
class DatumBatcher:
    """Checks datums against one model's limits and pads them into a :class:`Batch`.

    Args:
        vocab_size: token ids must be in ``0..vocab_size - 1``.
        max_positions: the longest ``model_input`` the model accepts.
        device: where the batch tensors go (the model's device).
    """

    vocab_size: int
    max_positions: int
    device: torch.device

    def prepare(
        self,
        operation: str,
        datums: Any,
        *,
        required: tuple[str, ...],
        what: str,
        exact_keys: bool,
        allow_per_position: bool,
    ) -> Batch:
        """Validate every datum completely, then build the padded batch tensors.

        Args:
            operation: the call, for messages (``forward_backward`` ...).
            datums: what the caller passed.
            required: the ``loss_fn_inputs`` keys the loss needs, ``target_tokens`` first.
            what: the loss, for messages.
            exact_keys: refuse keys outside ``required`` (built-in losses).
            allow_per_position: accept ``target_tokens`` of shape ``(T, K)``.

        Raises:
            ConfigurationError: not a list of datums, or missing or unexpected keys.
            InvalidDataError: images, empty or too long inputs, ids outside the vocabulary,
                wrong shapes, non-finite inputs.
        """
        import torch

        if not isinstance(datums, Sequence) or isinstance(datums, str | bytes):
            raise ConfigurationError(
                f"{operation}: datums must be a list of Datum, got {type(datums).__name__}"
            )
        if not datums:
            raise ConfigurationError(f"{operation}: no datums; pass at least one Datum")
        float_keys = [key for key in required if key != "target_tokens"]
        all_tokens: list[npt.NDArray[np.int64]] = []
        all_targets: list[npt.NDArray[np.int64]] = []
        all_inputs: dict[str, list[npt.NDArray[np.float32]]] = {key: [] for key in float_keys}
        for index, datum in enumerate(datums):
            at = f"{operation}: datum {index}"
            tokens = self._check_tokens(at, datum)
            _check_keys(at, datum, required, what, exact_keys=exact_keys)
            targets = self._check_targets(at, datum, len(tokens), allow_per_position)
            for key in float_keys:
                all_inputs[key].append(_check_floats(at, datum, key, targets.shape))
            all_tokens.append(tokens)
            all_targets.append(targets)
        if len({targets.shape[1:] for targets in all_targets}) > 1:
            raise InvalidDataError(
                f"{operation}: datums mix target_tokens shapes (T,) and (T, K), or differ in "
                "K; use one layout per call"
            )

        lengths = tuple(int(tokens.shape[0]) for tokens in all_tokens)
        longest = max(lengths)
        padded = np.zeros((len(lengths), longest), dtype=np.int64)
        real = np.zeros((len(lengths), longest), dtype=bool)
        for row, tokens in enumerate(all_tokens):
            padded[row, : tokens.shape[0]] = tokens
            real[row, : tokens.shape[0]] = True
        per_position = all_targets[0].shape[1] if all_targets[0].ndim == 2 else None
        targets_nk = np.concatenate(all_targets).reshape(sum(lengths), per_position or 1)
        device = self.device
        positions = torch.from_numpy(real).to(device)
        return Batch(
            input_ids=torch.from_numpy(padded).to(device),
            # Right padding with a causal model: real positions never attend to padding,
            # so the mask only matters for padded rows; skip it when nothing is padded.
            attention_mask=None if real.all() else positions.long(),
            positions=positions,
            targets=torch.from_numpy(targets_nk).to(device),
            inputs={
                key: torch.from_numpy(np.concatenate(arrays)).to(device)
                for key, arrays in all_inputs.items()
            },
            lengths=lengths,
            per_position=per_position,
        )

    def _check_tokens(self, at: str, datum: Any) -> npt.NDArray[np.int64]:
        """The datum's input ids, refusing non-datums, images, empty/long inputs, bad ids."""
        if not isinstance(datum, Datum):
            raise ConfigurationError(f"{at} is a {type(datum).__name__}; expected a Datum")
        for chunk_index, chunk in enumerate(datum.model_input.chunks):
            if isinstance(chunk, ImageChunk):
                raise InvalidDataError(
                    f"{at}: model_input chunk {chunk_index} is an image; the local_torch "
                    "engine trains text-only causal LMs and does not support image inputs"
                )
        tokens = np.asarray(datum.model_input.to_ints(), dtype=np.int64)
        length = int(tokens.shape[0])
        if length == 0:
            raise InvalidDataError(f"{at}: model_input is empty; give at least one token")
        if length > self.max_positions:
            raise InvalidDataError(
                f"{at}: model_input has {length} positions; the model accepts at most "
                f"{self.max_positions} (max_seq_length)"
            )
        self._check_ids(tokens, lambda flat: f"{at}: model_input token at position {flat}")
        return tokens

    def _check_targets(
        self, at: str, datum: Datum, length: int, allow_per_position: bool
    ) -> npt.NDArray[np.int64]:
        """``target_tokens``: int64 ids of shape (T,) (or (T, K) where allowed)."""
        targets = datum.loss_fn_inputs["target_tokens"].to_numpy()
        if targets.dtype != np.int64:
            raise InvalidDataError(
                f"{at}: target_tokens are {targets.dtype}; they must be int64 token ids"
            )
        ranks = (1, 2) if allow_per_position else (1,)
        if targets.shape[:1] != (length,) or targets.ndim not in ranks:
            shapes = f"({length},) or ({length}, K)" if allow_per_position else f"({length},)"
            raise InvalidDataError(
                f"{at}: target_tokens has shape {list(targets.shape)}; expected {shapes}"
            )
        width = targets.shape[1] if targets.ndim == 2 else None

        def where(flat: int) -> str:
            index = f"[{flat}]" if width is None else f"[{flat // width}, {flat % width}]"
            return f"{at}: target_tokens{index}"

        self._check_ids(targets, where)
        result: npt.NDArray[np.int64] = targets
        return result

    def _check_ids(self, ids: npt.NDArray[np.int64], where: Callable[[int], str]) -> None:
        bad = np.flatnonzero((ids < 0) | (ids >= self.vocab_size))
        if bad.size:
            flat = int(bad[0])
            raise InvalidDataError(
                f"{where(flat)} is {int(ids.reshape(-1)[flat])}, outside the vocabulary "
                f"(vocab_size {self.vocab_size}: ids 0..{self.vocab_size - 1})"
            )


def target_logprobs(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """log p(target) at every real position: (N,), or (N, K) for per-position targets."""
    import torch

    output = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    if batch.attention_mask is None:
        # No padding: a reshape is a view, whereas mask indexing copies the (N, V)
        # logits forward and scatters them back on backward (~4% of a step).
        logits = output.logits.reshape(-1, output.logits.shape[-1])
    else:
        logits = output.logits[batch.positions]  # (N, V): padding is never scored
    logprobs: torch.Tensor = torch.log_softmax(logits.float(), dim=-1).gather(-1, batch.targets)
    return logprobs if batch.per_position is not None else logprobs.squeeze(-1)


def per_datum(values: torch.Tensor, batch: Batch) -> list[TensorData]:
    """``values`` (one row per real position) split into float32 arrays, one per datum."""
    import torch

    pieces = torch.split(values.detach().float().cpu(), list(batch.lengths))
    return [TensorData(array=piece.numpy()) for piece in pieces]


def _check_keys(
    at: str, datum: Datum, required: tuple[str, ...], what: str, *, exact_keys: bool
) -> None:
    given = datum.loss_fn_inputs
    for key in required:
        if key not in given:
            raise ConfigurationError(
                f"{at}: loss_fn_inputs has no {key!r}; {what} needs {', '.join(required)}"
            )
    if exact_keys:
        for key in sorted(given):
            if key not in required:
                raise ConfigurationError(
                    f"{at}: loss_fn_inputs key {key!r} is not an input of {what}, "
                    f"which takes exactly {', '.join(required)}"
                )


def _check_floats(
    at: str, datum: Datum, key: str, shape: tuple[int, ...]
) -> npt.NDArray[np.float32]:
    """A float loss input as float32, shaped like ``target_tokens`` and finite."""
    values: npt.NDArray[np.float32] = datum.loss_fn_inputs[key].to_numpy().astype(np.float32)
    if values.shape != shape:
        raise InvalidDataError(
            f"{at}: {key} has shape {list(values.shape)}; expected {list(shape)}, "
            "the shape of target_tokens"
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        flat = int(bad[0])
        raise InvalidDataError(
            f"{at}: {key} has a non-finite value ({values.reshape(-1)[flat]} at flat index "
            f"{flat}); loss inputs must be finite"
        )
    return values
