"""Local PyTorch sampling client (adapter layer, ``torch`` + ``transformers``).

Samples continuations from a Hugging Face causal LM in this process, with a hand-written
batched KV-cache decoding loop (faster than ``generate()`` on small models, and it returns
exact per-token logprobs without ``output_scores``).

How a :meth:`LocalTorchSamplingClient.sample` call runs:

* the prompt is run once (prefill); its KV cache is then repeated for the ``num_samples``
  sequences, which decode together, one token per step for all live sequences;
* a sequence that stops is dropped from the batch (its KV cache rows too), so finished
  sequences cost nothing. Every live sequence has the same length (same prompt, one token
  per step), so no padding or attention mask is needed;
* a token is chosen from the *processed* distribution: logits / ``temperature``, then
  ``top_k``, then ``top_p``; ``temperature=0`` takes the argmax. With a ``seed`` the choice
  uses a private ``torch.Generator``, so the same seed gives the same tokens;
* the returned ``logprobs`` are the log-softmax of the model's **raw** logits (temperature
  1, no top-k/top-p): exactly what the training client's ``forward`` computes for the same
  tokens, so importance-sampling ratios between sampler and learner are exact (up to float
  rounding) whatever the sampling temperature.

Calls run on one worker thread in submission order; every call returns a future at once.
Bad input (empty prompt, images, ids outside the vocabulary, ``num_samples < 1``, stop
strings without a decoder) raises in the caller's thread; a failure inside the model
fails the future with :class:`~crucible_train.errors.SamplingClientError`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from crucible_train.adapters.local_torch.model import (
    build_model,
    is_lora,
    load_for_sampler,
    require_packages,
    resolve_settings,
    torch_device,
)
from crucible_train.adapters.local_torch.settings import (
    DEFAULT_LORA_TARGETS,
    LocalTorchModelSettings,
)
from crucible_train.errors import (
    ConfigurationError,
    CrucibleError,
    InvalidDataError,
    SamplingClientError,
)
from crucible_train.ports.sampling import SamplingClient
from crucible_train.types import (
    ImageChunk,
    ModelInput,
    SampleResponse,
    SamplingParams,
    StopReason,
    TokensWithLogprobs,
)

if TYPE_CHECKING:
    import torch

__all__ = ["Decoder", "LocalTorchSamplingClient"]

Decoder = Callable[[list[int]], str]
"""Turns token ids into text; needed only for string stop sequences."""

_T = TypeVar("_T")

_SINGLE_THREAD_BELOW: Final = 100_000_000
"""Models with fewer parameters decode on one intra-op thread (see ``decode_threads``)."""


def _eos_ids(model: Any) -> frozenset[int]:
    """End-of-sequence ids from the model's config and generation config (either may be unset)."""
    found: set[int] = set()
    for config in (getattr(model, "config", None), getattr(model, "generation_config", None)):
        value = getattr(config, "eos_token_id", None)
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        found.update(int(v) for v in values if v is not None)
    return frozenset(found)


def _parameter_count(model: Any) -> int:
    return sum(int(p.numel()) for p in model.parameters())


def _set_worker_threads(count: int) -> None:
    """Give the calling thread ``count`` intra-op threads, leaving every other thread's alone.

    ``torch.set_num_threads`` sets the calling thread's OpenMP and MKL thread counts, but
    also the count every thread started later picks up at its first parallel op; a
    throwaway thread puts that back, so the training client's threads keep theirs.
    """
    import torch

    inherited = torch.get_num_threads()  # a fresh thread reports the process setting
    if count == inherited:
        return
    torch.set_num_threads(count)
    restore = threading.Thread(target=torch.set_num_threads, args=(inherited,))
    restore.start()
    restore.join()


def _forward_parameters(model: Any) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):  # builtins or exotic wrappers have no signature
        return frozenset()


class LocalTorchSamplingClient(SamplingClient):
    """Samples from a Hugging Face causal LM in this process (see the module docstring).

    Build it from the ``local_torch`` model settings (``LocalTorchSamplingClient(**settings)``),
    from weights on disk (:meth:`from_pretrained`) or around a model already in memory
    (:meth:`from_model`). Thread-safe: calls may come from any thread and run one at a time
    in submission order. Picklable: the copy rebuilds the model from the same settings, path
    or (for :meth:`from_model`) a pickled copy of the model; the decoder must pickle too.
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
        decode: Decoder | None = None,
        decode_threads: int | None = None,
    ) -> None:
        """Build the model the ``local_torch`` settings describe (as the training client does).

        Every argument but the last two is a field of
        :class:`~.settings.LocalTorchModelSettings` (``sampling.local_torch``
        in ``containers.yaml``), with the same default; see that class for each one. The
        same settings and seed give the same weights as a training client's initial ones.
        ``checkpoint_dir`` is accepted for symmetry and unused. ``max_seq_length`` bounds
        prompt plus continuation.

        Args:
            decode: token ids → text, needed only for string stop sequences.
            decode_threads: intra-op threads of the sampler's worker thread; see
                :meth:`from_model`.

        Raises:
            ConfigurationError: invalid settings (every problem listed), CUDA asked for
                but absent, an unreadable ``model_path``.
            AdapterUnavailableError: torch, transformers, safetensors (or peft, for
                LoRA) is not installed.
        """
        # Every argument up to checkpoint_dir is a setting; collect them before any other
        # local exists.
        settings = {
            name: value
            for name, value in locals().items()
            if name not in ("self", "decode", "decode_threads")
        }
        self._build_from_settings(
            resolve_settings(settings, port="sampling"), decode, decode_threads
        )

    def _build_from_settings(
        self,
        settings: LocalTorchModelSettings,
        decode: Decoder | None,
        decode_threads: int | None,
    ) -> None:
        self._setup(
            build_model(settings),
            device=settings.device,
            decode=decode,
            decode_threads=decode_threads,
            max_seq_length=settings.max_seq_length,
            # The resolved settings (absolute paths), so a copy in another process or
            # directory builds the same model.
            rebuild=(_rebuild_from_settings, (settings, decode, decode_threads)),
        )

    @classmethod
    def from_model(
        cls,
        model: Any,
        *,
        device: str = "cpu",
        decode: Decoder | None = None,
        max_seq_length: int | None = None,
        decode_threads: int | None = None,
    ) -> LocalTorchSamplingClient:
        """Wrap a causal LM that is already in memory.

        The client reads the model's weights as they are at each call and does not change
        its train/eval mode; pass a copy to sample from a frozen snapshot while training
        goes on.

        Args:
            model: a ``transformers`` causal LM (or a PEFT wrapper of one) on ``device``.
            device: the torch device the model lives on (``"cpu"``, ``"cuda:N"``).
            decode: token ids → text, needed only for string stop sequences.
            max_seq_length: longest prompt plus continuation; defaults to the model config's
                ``max_position_embeddings``.
            decode_threads: intra-op threads (``torch.set_num_threads``) of the sampler's
                worker thread only. ``None`` picks 1 for models under 100 M parameters and
                keeps torch's setting for larger ones. Why 1: a decoding step is a few
                hundred tiny ops, for which OpenMP's fork/join costs more than it saves;
                and once a second thread of the process (the training client's, say) has
                its own OpenMP pool, libgomp stops spinning and every parallel op pays a
                thread wake-up. Measured on 2 cores with the default model after one
                training step in another thread: 6.5k tokens/s at batch 8 on one thread,
                1.8k on two.
        """
        client = cls.__new__(cls)
        client._setup(
            model,
            device=device,
            decode=decode,
            decode_threads=decode_threads,
            max_seq_length=max_seq_length,
            rebuild=(
                _rebuild_from_model,
                (model, device, decode, max_seq_length, decode_threads),
            ),
        )
        return client

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        decode: Decoder | None = None,
        max_seq_length: int | None = None,
        decode_threads: int | None = None,
    ) -> LocalTorchSamplingClient:
        """Load weights saved for sampling (``save_weights_for_sampler``) from a directory.

        Args:
            path: the directory (a Hugging Face ``save_pretrained`` layout).
            device: torch device to load onto (``"cpu"``, ``"cuda:0"``).
            dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
            decode: token ids → text, needed only for string stop sequences.
            max_seq_length: longest prompt plus continuation; defaults to the model config's
                ``max_position_embeddings``.
            decode_threads: intra-op threads of the sampler's worker thread; see
                :meth:`from_model`.

        Raises:
            ConfigurationError: ``path`` holds no loadable model, ``dtype`` is unknown,
                or CUDA was asked for but is absent.
            AdapterUnavailableError: torch, transformers or safetensors is not installed.
        """
        model = load_for_sampler(path, device, dtype)
        client = cls.__new__(cls)
        client._setup(
            model,
            device=device,
            decode=decode,
            decode_threads=decode_threads,
            max_seq_length=max_seq_length,
            rebuild=(
                _rebuild_from_pretrained,
                (path, device, dtype, decode, max_seq_length, decode_threads),
            ),
        )
        return client

    def _setup(
        self,
        model: Any,
        *,
        device: str,
        decode: Decoder | None,
        decode_threads: int | None,
        max_seq_length: int | None,
        rebuild: tuple[Callable[..., LocalTorchSamplingClient], tuple[Any, ...]],
    ) -> None:
        require_packages("sampling")

        self._model = model
        self._device = torch_device(device)
        self._decode = decode
        self._rebuild = rebuild
        config = getattr(model, "config", None)
        embeddings = model.get_input_embeddings()
        self._vocab_size = int(embeddings.num_embeddings)
        if max_seq_length is None:
            max_seq_length = getattr(config, "max_position_embeddings", None)
        if max_seq_length is None or int(max_seq_length) < 2:
            raise ConfigurationError(
                f"local_torch sampler: max_seq_length is {max_seq_length!r}; give a whole "
                "number >= 2 (the model config has no max_position_embeddings)"
            )
        self._max_seq_length = int(max_seq_length)
        self._eos_token_ids = _eos_ids(model)
        # A peft wrapper's forward takes **kwargs and hands them to the base model's.
        parameters = _forward_parameters(model.get_base_model() if is_lora(model) else model)
        # transformers 5 renamed ``past_key_values`` to ``cache`` (the old name warns).
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self._keeps_last_logits = "logits_to_keep" in parameters
        self._lock = threading.Lock()
        self._closed = False
        if decode_threads is not None and (
            isinstance(decode_threads, bool)
            or not isinstance(decode_threads, int)
            or decode_threads < 1
        ):
            raise ConfigurationError(
                f"local_torch sampler: decode_threads is {decode_threads!r}; use a whole "
                "number >= 1, or None to choose by model size"
            )
        if decode_threads is None and _parameter_count(model) < _SINGLE_THREAD_BELOW:
            decode_threads = 1
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-torch-sampler")
        if decode_threads is not None:
            # The worker's first task: later calls run with this setting.
            self._executor.submit(_set_worker_threads, decode_threads)

    # --- public API ---------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model embeds (valid ids are ``0 .. vocab_size-1``)."""
        return self._vocab_size

    @property
    def max_seq_length(self) -> int:
        """Longest prompt plus continuation the sampler produces."""
        return self._max_seq_length

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Token ids that always end a sample (from the model's configs; may be empty)."""
        return self._eos_token_ids

    def sample(
        self, prompt: ModelInput, num_samples: int, params: SamplingParams
    ) -> Future[SampleResponse]:
        """Generate ``num_samples`` continuations of ``prompt``, batched together.

        A sequence stops at a stop token id, at an end-of-sequence id of the model (always,
        even when ``params.stop`` is empty), when its decoded text contains a stop string
        (checked on the generated text only), or after ``params.max_tokens`` tokens. Without
        ``max_tokens`` (and in any case) it stops when prompt plus continuation reach
        ``max_seq_length``. The stop token or the token completing a stop string is
        included in the result.

        Args:
            prompt: the text tokens to continue (no images).
            num_samples: how many continuations, >= 1.
            params: temperature, top-k, top-p, max tokens, stop sequences and seed.

        Returns:
            A future of one sequence per sample with its tokens, the raw temperature-1
            logprob of each token (see the module docstring) and ``"stop"`` or ``"length"``.

        Raises:
            InvalidDataError: the prompt is empty, holds an image, an id outside the
                vocabulary, or leaves no room to generate; a stop id is outside the vocabulary.
            ConfigurationError: ``num_samples < 1``, ``params`` is not ``SamplingParams``,
                or stop strings were given but the client has no decoder.
            SamplingClientError: the client is closed (the future fails with it when the
                model fails).
        """
        tokens = self._prompt_tokens(prompt, "sample")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigurationError(
                f"sample: num_samples is {num_samples!r}; use a whole number >= 1"
            )
        if not isinstance(params, SamplingParams):
            raise ConfigurationError(
                f"sample: params is a {type(params).__name__}; pass a SamplingParams"
            )
        room = self._max_seq_length - len(tokens)
        if room < 1:
            raise InvalidDataError(
                f"sample: the prompt has {len(tokens)} tokens, which leaves no room to "
                f"generate within max_seq_length {self._max_seq_length}"
            )
        stop_ids, stop_strings = self._stops(params)
        max_new = room if params.max_tokens is None else min(params.max_tokens, room)
        return self._submit(
            self._run_sample, tokens, num_samples, params, stop_ids, stop_strings, max_new
        )

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        """Log-probability of every prompt token given its prefix (one teacher-forced pass).

        Returns:
            A future of ``prompt.length`` values; entry 0 is ``None``.

        Raises:
            InvalidDataError: the prompt is empty, holds an image, an id outside the
                vocabulary, or is longer than ``max_seq_length``.
            SamplingClientError: the client is closed (the future fails with it when the
                model fails).
        """
        tokens = self._prompt_tokens(prompt, "compute_logprobs")
        if len(tokens) > self._max_seq_length:
            raise InvalidDataError(
                f"compute_logprobs: the prompt has {len(tokens)} tokens; the limit is "
                f"max_seq_length {self._max_seq_length}"
            )
        return self._submit(self._run_compute_logprobs, tokens)

    def close(self) -> None:
        """Finish the calls already submitted, then stop the worker thread. Idempotent."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True)

    def __enter__(self) -> LocalTorchSamplingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[..., LocalTorchSamplingClient], tuple[Any, ...]]:
        # Threads, locks and the live model do not pickle; rebuild from what made us.
        return self._rebuild

    # --- validation (caller thread) -------------------------------------------------------

    def _prompt_tokens(self, prompt: ModelInput, operation: str) -> list[int]:
        if not isinstance(prompt, ModelInput):
            raise InvalidDataError(
                f"{operation}: prompt is a {type(prompt).__name__}; pass a ModelInput"
            )
        for index, chunk in enumerate(prompt.chunks):
            if isinstance(chunk, ImageChunk):
                raise InvalidDataError(
                    f"{operation}: prompt chunk {index} is an image; the local_torch sampler "
                    "runs text-only causal LMs"
                )
        tokens = prompt.to_ints()
        if not tokens:
            raise InvalidDataError(f"{operation}: the prompt is empty; give at least one token")
        for position, token in enumerate(tokens):
            if token >= self._vocab_size:
                raise InvalidDataError(
                    f"{operation}: prompt token at position {position} is {token}, outside "
                    f"the model's vocabulary (ids 0..{self._vocab_size - 1})"
                )
        return tokens

    def _stops(self, params: SamplingParams) -> tuple[frozenset[int], tuple[str, ...]]:
        strings = tuple(s for s in params.stop if isinstance(s, str))
        ids = [s for s in params.stop if not isinstance(s, str)]
        if strings and self._decode is None:
            raise ConfigurationError(
                f"sample: stop strings {list(strings)!r} need a decoder; build the sampler "
                "with decode=<token ids -> text> or pass stop token ids"
            )
        bad = [token for token in ids if token >= self._vocab_size]
        if bad:
            raise InvalidDataError(
                f"sample: stop token ids {bad} are outside the model's vocabulary "
                f"(ids 0..{self._vocab_size - 1})"
            )
        return frozenset(ids) | self._eos_token_ids, strings

    def _submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        with self._lock:
            if self._closed:
                raise SamplingClientError("local_torch sampler is closed; build a new one")
            return self._executor.submit(self._guarded, fn, *args)

    @staticmethod
    def _guarded(fn: Callable[..., _T], *args: Any) -> _T:
        # The port promises SamplingClientError for backend failures, whatever torch raised.
        try:
            return fn(*args)
        except CrucibleError:
            raise
        except Exception as exc:
            raise SamplingClientError(
                f"local_torch sampler failed: {type(exc).__name__}: {exc}"
            ) from exc

    # --- model work (worker thread) ---------------------------------------------------------

    def _forward(
        self, input_ids: torch.Tensor, *, cache: Any = None, use_cache: bool, last_only: bool
    ) -> Any:
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": use_cache}
        if cache is not None:
            kwargs[self._cache_arg] = cache
        if last_only and self._keeps_last_logits:
            # The LM head only for the last position: the prompt's other logits are unused.
            kwargs["logits_to_keep"] = 1
        return self._model(**kwargs)

    def _run_compute_logprobs(self, tokens: list[int]) -> list[float | None]:
        import torch

        with torch.inference_mode():
            ids = torch.tensor([tokens], dtype=torch.long, device=self._device)
            logits = self._forward(ids, use_cache=False, last_only=False).logits[0, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            picked = logprobs.gather(1, ids[0, 1:, None]).squeeze(1)
            values: list[float | None] = [None]
            values.extend(picked.tolist())
            return values

    def _run_sample(
        self,
        tokens: list[int],
        num_samples: int,
        params: SamplingParams,
        stop_ids: frozenset[int],
        stop_strings: tuple[str, ...],
        max_new: int,
    ) -> SampleResponse:
        import torch

        with torch.inference_mode():
            generator = torch.Generator(device=self._device)
            if params.seed is None:
                generator.seed()
            else:
                generator.manual_seed(params.seed)
            ids = torch.tensor([tokens], dtype=torch.long, device=self._device)
            # Prefill once; the n samples share the prompt's KV cache.
            output = self._forward(ids, use_cache=True, last_only=True)
            cache = getattr(output, self._cache_arg)
            logits = output.logits[:, -1, :].float()
            if num_samples > 1:
                cache.batch_repeat_interleave(num_samples)
                logits = logits.expand(num_samples, -1)

            out_tokens: list[list[int]] = [[] for _ in range(num_samples)]
            out_logprobs: list[list[float]] = [[] for _ in range(num_samples)]
            reasons: list[StopReason] = ["length"] * num_samples
            live = list(range(num_samples))  # sample index of each batch row
            for step in range(max_new):
                logprobs = torch.log_softmax(logits, dim=-1)
                uniform = None
                if params.temperature != 0:
                    # One draw per *sample* every step, used or not, so a sample's tokens
                    # depend only on the seed and its index, not on when the others stop.
                    uniform = torch.rand(
                        (num_samples, 1),
                        generator=generator,
                        dtype=torch.float64,
                        device=self._device,
                    )
                    if len(live) < num_samples:
                        uniform = uniform[live]
                chosen = self._choose(logits, params, uniform)
                chosen_logprobs = logprobs.gather(1, chosen[:, None]).squeeze(1)
                keep: list[int] = []
                for row, (token, logprob) in enumerate(
                    zip(chosen.tolist(), chosen_logprobs.tolist(), strict=True)
                ):
                    index = live[row]
                    out_tokens[index].append(token)
                    out_logprobs[index].append(logprob)
                    if token in stop_ids or (
                        stop_strings and self._hits_stop_string(out_tokens[index], stop_strings)
                    ):
                        reasons[index] = "stop"
                    else:
                        keep.append(row)
                if not keep or step == max_new - 1:
                    break
                if len(keep) < len(live):
                    # Finished rows leave the batch, KV cache included: no compute spent on them.
                    rows = torch.tensor(keep, dtype=torch.long, device=self._device)
                    cache.batch_select_indices(rows)
                    chosen = chosen[rows]
                    live = [live[row] for row in keep]
                output = self._forward(chosen[:, None], cache=cache, use_cache=True, last_only=True)
                logits = output.logits[:, -1, :].float()

            sequences = [
                TokensWithLogprobs(
                    tokens=out_tokens[i], logprobs=out_logprobs[i], stop_reason=reasons[i]
                )
                for i in range(num_samples)
            ]
            # attrs' mypy plugin types a ``converter=tuple`` field as ``Iterable[_T_co]``.
            return SampleResponse(sequences=sequences)  # type: ignore[arg-type]

    def _hits_stop_string(self, generated: list[int], stop_strings: Sequence[str]) -> bool:
        assert self._decode is not None  # checked when the call was submitted
        # Decode the whole continuation: a window could cut a multi-byte character in two.
        text = self._decode(list(generated))
        return any(stop in text for stop in stop_strings)

    def _choose(
        self, logits: torch.Tensor, params: SamplingParams, uniform: torch.Tensor | None
    ) -> torch.Tensor:
        """One token per row from the processed distribution (temperature, top-k, top-p).

        ``uniform`` holds one float64 draw in [0, 1) per row (``None`` when greedy).
        """
        import torch

        if params.temperature == 0 or uniform is None:
            result: torch.Tensor = logits.argmax(dim=-1)
            return result
        scaled = logits / params.temperature if params.temperature != 1 else logits
        candidates: torch.Tensor | None = None  # vocabulary id of each column, if reordered
        if 0 < params.top_k < scaled.shape[-1]:
            scaled, candidates = scaled.topk(params.top_k, dim=-1)  # sorted, largest first
        elif params.top_p < 1:
            scaled, candidates = scaled.sort(dim=-1, descending=True)
        probs = torch.softmax(scaled, dim=-1)
        if params.top_p < 1:
            # Keep the smallest prefix whose mass reaches top_p: drop a token once the mass
            # before it already does. The most likely token always stays.
            before = probs.cumsum(dim=-1) - probs
            probs = probs.masked_fill(before >= params.top_p, 0.0)
        picked = _inverse_cdf(probs, uniform)
        if candidates is None:
            return picked
        chosen: torch.Tensor = candidates.gather(1, picked[:, None]).squeeze(1)
        return chosen


def _inverse_cdf(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Pick one column per row with probability proportional to ``probs`` (rows need not sum to 1).

    Inverse-CDF sampling with one given uniform draw per row. ``torch.multinomial`` costs
    about 10x more on a CPU (measured: 140 µs vs 15 µs per row over 8k tokens), which made
    it the largest single cost of a small model's decoding step.
    """
    import torch

    cdf = probs.cumsum(dim=-1, dtype=torch.float64)  # float64: no drift over large vocabularies
    # right=True picks the first column whose cdf exceeds u, so zero-probability columns
    # (removed by top-p) are never drawn; the clamp only guards u*total rounding up to total.
    picked = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True)
    result: torch.Tensor = picked.clamp_(max=probs.shape[-1] - 1).squeeze(1)
    return result


# --- unpickling -------------------------------------------------------------------------------


def _rebuild_from_settings(
    settings: LocalTorchModelSettings, decode: Decoder | None, decode_threads: int | None
) -> LocalTorchSamplingClient:
    client = LocalTorchSamplingClient.__new__(LocalTorchSamplingClient)
    client._build_from_settings(settings, decode, decode_threads)
    return client


def _rebuild_from_model(
    model: Any,
    device: str,
    decode: Decoder | None,
    max_seq_length: int | None,
    decode_threads: int | None,
) -> LocalTorchSamplingClient:
    return LocalTorchSamplingClient.from_model(
        model,
        device=device,
        decode=decode,
        max_seq_length=max_seq_length,
        decode_threads=decode_threads,
    )


def _rebuild_from_pretrained(
    path: str,
    device: str,
    dtype: str,
    decode: Decoder | None,
    max_seq_length: int | None,
    decode_threads: int | None,
) -> LocalTorchSamplingClient:
    return LocalTorchSamplingClient.from_pretrained(
        path,
        device=device,
        dtype=dtype,
        decode=decode,
        max_seq_length=max_seq_length,
        decode_threads=decode_threads,
    )
