"""Local PyTorch training client (adapter layer, ``torch`` + ``transformers`` + ``peft``).

Trains a causal LM in this process with the Tinker API's semantics: built-in losses with
SUM reduction (:mod:`~crucible_train.adapters.local_torch.losses`), custom numpy losses
through a linear surrogate, AdamW steps with per-step hyper-parameters, resumable
training state and weights saved for sampling.

How calls run: every method returns a :class:`concurrent.futures.Future` at once and
queues the work for ONE worker thread, which executes calls strictly in submission order.
A caller may therefore submit ``forward_backward`` and ``optim_step`` back to back and
prepare its next batch meanwhile. A failing call fails its own future with a typed error
(``ConfigurationError`` / ``InvalidDataError`` for bad input, ``TrainingClientError`` for
the backend) and the worker goes on with the next call. Input is validated completely
before the model runs, so a call refused for bad input leaves gradients untouched.

The pieces live beside it: :mod:`~crucible_train.adapters.local_torch.call_worker` (the
worker loop), :mod:`~crucible_train.adapters.local_torch.batching` (datum checks and
right-padded batches: only real positions are scored, results come back per datum without
padding), :mod:`~crucible_train.adapters.local_torch.custom_loss` (what a custom loss must
return), :mod:`~crucible_train.adapters.local_torch.adamw` (the optimizer step) and
:mod:`~crucible_train.adapters.local_torch.training_state` (the ``save_state`` directory).
"""

from __future__ import annotations

import functools
import queue
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from crucible_train.adapters.local_torch.adamw import adamw_step, new_adamw
from crucible_train.adapters.local_torch.batching import (
    DatumBatcher,
    per_datum,
    target_logprobs,
)
from crucible_train.adapters.local_torch.call_worker import STOP, run_calls
from crucible_train.adapters.local_torch.custom_loss import check_custom_result
from crucible_train.adapters.local_torch.losses import (
    LOSS_INPUTS,
    check_loss_name,
    elementwise_loss,
    loss_metrics,
    resolve_loss_config,
)
from crucible_train.adapters.local_torch.model import (
    base_model_config,
    build_model,
    model_fingerprint,
    resolve_settings,
    save_for_sampler,
)
from crucible_train.adapters.local_torch.settings import (
    DEFAULT_LORA_TARGETS,
    LocalTorchModelSettings,
)
from crucible_train.adapters.local_torch.training_state import (
    STATE_FORMAT,
    STATE_FORMAT_VERSION,
    read_training_state,
    restore_parameters,
    restore_rng,
    save_training_state,
)
from crucible_train.errors import (
    ConfigurationError,
    CrucibleError,
    TrainingClientError,
)
from crucible_train.ports.training import CustomLossFn, TrainingClient
from crucible_train.types import (
    AdamParams,
    Datum,
    ForwardBackwardOutput,
    LossFnName,
    OptimStepResponse,
    TensorData,
)

if TYPE_CHECKING:
    import torch

    from crucible_train.ports.sampling import SamplingClient

__all__ = ["STATE_FORMAT", "STATE_FORMAT_VERSION", "LocalTorchTrainingClient"]

_T = TypeVar("_T")


class LocalTorchTrainingClient(TrainingClient):
    """Trains a causal LM in this process (see the module docstring for how calls run).

    Thread-safety: methods may be called from any thread; work runs on one worker thread
    in submission order. Not picklable (it owns a model and a thread). Call :meth:`close`
    (or use it as a context manager) to stop the worker; an abandoned client stops it when
    garbage-collected.
    """

    def __init__(
        self,
        *,
        architecture: Literal["qwen3", "llama"] = "qwen3",
        model_path: str | None = None,
        vocab_size: int = 512,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        num_kv_heads: int = 2,
        head_dim: int = 32,
        intermediate_size: int = 384,
        max_seq_length: int = 2048,
        seed: int = 0,
        device: str = "cpu",
        dtype: Literal["float32", "bfloat16"] = "float32",
        num_threads: int | None = None,
        lora_rank: int = 0,
        lora_alpha: float = 32.0,
        lora_targets: Sequence[str] = DEFAULT_LORA_TARGETS,
        checkpoint_dir: str = "runs/checkpoints",
    ) -> None:
        """Build the model and start the worker thread.

        The arguments are the fields of
        :class:`~.settings.LocalTorchModelSettings` (``training.local_torch``
        in ``containers.yaml``), with the same defaults; see that class for each one.

        Raises:
            ConfigurationError: invalid settings (every problem listed), CUDA asked for
                but absent, an unreadable ``model_path``.
            AdapterUnavailableError: torch, transformers, safetensors (or peft for LoRA)
                is not installed.
        """
        # Every argument is a setting; collect them before any other local exists.
        settings = {name: value for name, value in locals().items() if name != "self"}

        self._settings = resolve_settings(settings, port="training")
        self._model = build_model(self._settings)
        config = base_model_config(self._model)
        self._device = next(self._model.parameters()).device
        self._batcher = DatumBatcher(
            vocab_size=int(config.vocab_size),
            max_positions=int(
                getattr(config, "max_position_embeddings", None) or self._settings.max_seq_length
            ),
            device=self._device,
        )
        self._fingerprint = model_fingerprint(self._model, self._settings)
        # Full fine-tuning trains everything; with LoRA only the adapters require grad.
        self._trainable = [
            (name, parameter)
            for name, parameter in self._model.named_parameters()
            if parameter.requires_grad
        ]
        self._optimizer = new_adamw([p for _, p in self._trainable])
        self._step = 0
        self._lock = threading.Lock()
        self._closed = False
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=run_calls, args=(self._calls,), name="local-torch-trainer", daemon=True
        )
        self._worker.start()
        self._stop_worker = weakref.finalize(self, self._calls.put, STOP)

    # --- introspection ------------------------------------------------------------------

    @property
    def settings(self) -> LocalTorchModelSettings:
        """The validated settings (paths absolute)."""
        return self._settings

    @property
    def model(self) -> torch.nn.Module:
        """The model being trained; read it only while no call is pending."""
        return self._model

    @property
    def step(self) -> int:
        """Optimizer steps taken (restored by :meth:`load_state`)."""
        return self._step

    # --- the port -----------------------------------------------------------------------

    def forward_backward(
        self,
        datums: Sequence[Datum],
        loss_fn: LossFnName,
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        """Compute a built-in loss and add its gradients to the accumulated ones.

        Args:
            datums: examples with the loss's ``loss_fn_inputs`` (see
                :data:`~crucible_train.adapters.local_torch.losses.LOSS_INPUTS`).
            loss_fn: ``cross_entropy``, ``importance_sampling``, ``ppo``, ``cispo`` or ``dro``.
            loss_fn_config: ``clip_low_threshold`` / ``clip_high_threshold`` (``ppo``,
                ``cispo``) or ``beta`` (``dro``).

        Returns:
            A future of per-datum ``logprobs`` and ``elementwise_loss`` (float32, one per
            position) and the metrics of
            :func:`~crucible_train.adapters.local_torch.losses.loss_metrics`. It fails with
            ``ConfigurationError`` (unknown loss, missing or unexpected input key, bad
            option), ``InvalidDataError`` (images, ids outside the vocabulary, non-finite
            inputs, wrong shapes, too long) or ``TrainingClientError``.
        """
        config = dict(loss_fn_config) if isinstance(loss_fn_config, Mapping) else loss_fn_config
        return self._submit(
            "forward_backward",
            functools.partial(self._run_builtin, _snapshot(datums), loss_fn, config, True),
        )

    def forward(
        self, datums: Sequence[Datum], loss_fn: LossFnName
    ) -> Future[ForwardBackwardOutput]:
        """Like :meth:`forward_backward` (default loss options) under ``torch.no_grad()``.

        Never reads or writes any gradient, so it may run between ``forward_backward`` and
        ``optim_step`` (evaluation) without changing the step. Idempotent.
        """
        return self._submit(
            "forward",
            functools.partial(self._run_builtin, _snapshot(datums), loss_fn, None, False),
        )

    def forward_backward_custom(
        self, datums: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        """Run the model, let ``loss_fn`` compute a loss in numpy, backpropagate its gradient.

        ``loss_fn(datums, logprobs)`` receives one float32 array of target logprobs per
        datum (a copy; each datum needs ``target_tokens``, other keys are passed through)
        and returns ``(loss, grads, metrics)`` with ``grads[i] = d loss / d logprobs[i]``.
        The gradient reaches the weights through the linear surrogate ``sum(g * logprobs)``,
        whose gradient equals the loss's; the forward pass is done once.

        Returns:
            A future of per-datum ``logprobs`` and ``loss_fn``'s metrics plus ``loss``. It
            fails with ``ConfigurationError`` when ``loss_fn`` returns the wrong structure,
            gradients of the wrong shape or non-finite gradients (naming the datum), and with
            ``TrainingClientError`` when ``loss_fn`` raises.
        """
        return self._submit(
            "forward_backward_custom",
            functools.partial(self._run_custom, _snapshot(datums), loss_fn),
        )

    def optim_step(self, params: AdamParams) -> Future[OptimStepResponse]:
        """One AdamW step with the accumulated gradients, then clear them.

        Numerically the step of ``torch.optim.AdamW`` with ``lr``, ``betas``, ``eps`` and
        ``weight_decay`` from ``params``; when ``grad_clip_norm > 0`` the global gradient
        norm is clipped to it first (``torch.nn.utils.clip_grad_norm_``). Parameters
        without a gradient are left alone.

        Returns:
            A future of metrics ``grad_norm`` (global L2 norm before clipping), ``lr`` and
            ``step`` (steps taken, this one included). It fails with
            ``TrainingClientError`` when the gradient norm is not finite; the step is then
            skipped and the gradients cleared.
        """
        return self._submit("optim_step", functools.partial(self._run_optim_step, params))

    def save_state(self, name: str) -> Future[str]:
        """Save the training state to ``<checkpoint_dir>/<name>/``; the future gives the path.

        Written atomically: trainable weights (all weights when fully fine-tuning, the
        LoRA adapters otherwise), AdamW state, the step counter and torch's CPU (and CUDA)
        RNG state, as safetensors files, plus ``manifest.json`` (format version, model
        fingerprint, step, SHA-256 of every file). Gradients accumulated since the last
        ``optim_step`` are not saved. An existing state of the same name is replaced.
        """
        return self._submit("save_state", functools.partial(self._run_save_state, name))

    def load_state(self, path: str) -> Future[None]:
        """Restore a state written by :meth:`save_state`; pending gradients are cleared.

        After loading, the next steps are bit-identical (on CPU) to those of the run that
        saved it. Nothing changes unless the whole state is valid.

        The future fails with ``ConfigurationError`` when ``path`` holds no state or the
        state belongs to a different model (naming each difference, e.g.
        ``hidden_size 128 vs 256``), and with ``TrainingClientError`` when a file is
        missing, truncated or corrupted (SHA-256 mismatch).
        """
        return self._submit("load_state", functools.partial(self._run_load_state, path))

    def save_weights_for_sampler(self, name: str) -> Future[str]:
        """Save the weights to ``<checkpoint_dir>/<name>-sampler/`` for sampling.

        A Hugging Face ``save_pretrained`` directory (safetensors, LoRA merged), written
        atomically; the future gives its path, for :meth:`create_sampling_client`.
        """
        return self._submit(
            "save_weights_for_sampler", functools.partial(self._run_save_for_sampler, name)
        )

    def create_sampling_client(self, path: str) -> SamplingClient:
        """A local sampling client over weights saved by :meth:`save_weights_for_sampler`.

        Runs in the caller's thread: wait for the save's future before calling it.
        The sampler uses this client's ``device`` and ``dtype``.
        """
        from crucible_train.adapters.local_torch.sampling_client import LocalTorchSamplingClient

        return LocalTorchSamplingClient.from_pretrained(
            path, device=self._settings.device, dtype=self._settings.dtype
        )

    def close(self) -> None:
        """Finish the calls already submitted, then stop the worker. Idempotent.

        Calls submitted afterwards return futures failed with ``TrainingClientError``.
        """
        with self._lock:
            self._closed = True
        self._stop_worker()  # queues the stop marker once, however often close() runs
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> LocalTorchTrainingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- queueing -----------------------------------------------------------------------

    def _submit(self, operation: str, call: Callable[[], _T]) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(
                    TrainingClientError(f"{operation}: the local_torch training client is closed")
                )
            else:
                self._calls.put((future, operation, call))
        return future

    # --- model work (worker thread) -----------------------------------------------------

    def _run_builtin(
        self, datums: Any, loss_fn: Any, loss_fn_config: Any, backward: bool
    ) -> ForwardBackwardOutput:
        import torch

        operation = "forward_backward" if backward else "forward"
        name = check_loss_name(loss_fn)
        if loss_fn_config is not None and not isinstance(loss_fn_config, Mapping):
            raise ConfigurationError(
                f"{operation}: loss_fn_config must be a mapping of option to number, "
                f"got {type(loss_fn_config).__name__}"
            )
        options = resolve_loss_config(name, loss_fn_config)
        batch = self._batcher.prepare(
            operation,
            datums,
            required=LOSS_INPUTS[name],
            what=name,
            exact_keys=True,
            allow_per_position=name == "cross_entropy",
        )
        with torch.enable_grad() if backward else torch.no_grad():
            logprobs = target_logprobs(self._model, batch)
            elementwise = elementwise_loss(name, logprobs, batch.inputs, options)
            if backward:
                torch.autograd.backward(elementwise.sum())
        metrics = loss_metrics(name, logprobs, batch.inputs, options, elementwise)
        outputs: list[Mapping[str, TensorData]] = [
            {"logprobs": logprob, "elementwise_loss": loss}
            for logprob, loss in zip(
                per_datum(logprobs, batch), per_datum(elementwise, batch), strict=True
            )
        ]
        return ForwardBackwardOutput(loss_fn_outputs=outputs, metrics=metrics)

    def _run_custom(self, datums: Any, loss_fn: Any) -> ForwardBackwardOutput:
        import torch

        operation = "forward_backward_custom"
        if not callable(loss_fn):
            raise ConfigurationError(
                f"{operation}: loss_fn must be callable (datums, logprobs) -> "
                f"(loss, grads, metrics), got {type(loss_fn).__name__}"
            )
        batch = self._batcher.prepare(
            operation,
            datums,
            required=("target_tokens",),
            what="a custom loss",
            exact_keys=False,
            allow_per_position=False,
        )
        with torch.enable_grad():
            logprobs = target_logprobs(self._model, batch)
            arrays = [piece.to_numpy().copy() for piece in per_datum(logprobs, batch)]
            try:
                # Copies: whatever the loss function does to its arrays, our outputs stay.
                result = loss_fn(list(datums), [array.copy() for array in arrays])
            except CrucibleError:
                raise
            except Exception as exc:
                raise TrainingClientError(
                    f"{operation}: the loss function raised {type(exc).__name__}: {exc}"
                ) from exc
            loss, grads, metrics = check_custom_result(operation, result, arrays)
            grad = torch.from_numpy(np.concatenate(grads)).to(logprobs.device)
            # The linear surrogate sum(g * logp) has exactly the custom loss's gradient.
            torch.autograd.backward((grad * logprobs).sum())
        outputs = [{"logprobs": TensorData(array=array)} for array in arrays]
        return ForwardBackwardOutput(loss_fn_outputs=outputs, metrics={**metrics, "loss": loss})

    def _run_optim_step(self, params: Any) -> OptimStepResponse:
        if not isinstance(params, AdamParams):
            raise ConfigurationError(
                f"optim_step: params must be AdamParams, got {type(params).__name__}"
            )
        grad_norm = adamw_step(
            self._optimizer, [parameter for _, parameter in self._trainable], params
        )
        self._step += 1
        return OptimStepResponse(
            metrics={"grad_norm": grad_norm, "lr": params.learning_rate, "step": float(self._step)}
        )

    def _run_save_for_sampler(self, name: Any) -> str:
        checked = _checkpoint_name("save_weights_for_sampler", name)
        return save_for_sampler(
            self._model, Path(self._settings.checkpoint_dir) / f"{checked}-sampler"
        )

    # --- training state -----------------------------------------------------------------

    def _run_save_state(self, name: Any) -> str:
        checked = _checkpoint_name("save_state", name)
        destination = Path(self._settings.checkpoint_dir) / checked
        save_training_state(
            destination,
            trainable=self._trainable,
            adamw=self._optimizer,
            device=self._device,
            fingerprint=self._fingerprint,
            step=self._step,
            lora=self._settings.lora_rank > 0,
            base_model=self._settings.model_path,
        )
        return str(destination)

    def _run_load_state(self, path: Any) -> None:
        expected = dict(self._trainable)
        state = read_training_state(path, expected=expected, fingerprint=self._fingerprint)
        # Everything checked: now change the client, all at once.
        restore_parameters(state, expected=expected, adamw=self._optimizer)
        self._step = state.step
        restore_rng(state.rng, self._device)


# --- helpers ------------------------------------------------------------------------------


def _snapshot(datums: Any) -> Any:
    """Copy the caller's list at submission, so changing it later changes nothing queued."""
    if isinstance(datums, Sequence) and not isinstance(datums, str | bytes):
        return tuple(datums)
    return datums


def _checkpoint_name(operation: str, name: Any) -> str:
    if (
        not isinstance(name, str)
        or not name.strip()
        or name != name.strip()
        or name.startswith(".")
        or any(separator in name for separator in ("/", "\\", "\0"))
    ):
        raise ConfigurationError(
            f"{operation}: name {name!r} is not a plain directory name; use letters, digits, "
            "'-', '_' or '.', not starting with '.' and without '/'"
        )
    return name
