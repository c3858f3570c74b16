"""How ``crucible-train eval`` generates missing outputs: a trained model or the LLM port.

A model (``--model`` / ``--model-path``, see :mod:`crucible_train.entrypoints.eval_models`)
is sampled through :class:`~crucible_train.core.completers.SamplingCompleter` with the
configured ``sampling`` backend, tokenizer and ``train.renderer``: prompt messages →
``renderer.build_generation_prompt`` → ``sampler.sample`` → ``renderer.parse_response`` of
the sampled ids → the answer's text. Greedy (temperature 0) and at most
:data:`DEFAULT_MAX_TOKENS` tokens unless the sampling options say otherwise. Without a
model the configured ``llm`` backend answers, with the sampling options that were given.

:class:`Answerer` is the batch runner's per-sample ``generate``: the K copies of one input
(``--num-samples K``) are answered by one call for K answers, which a sampler decodes as
one batch.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import attrs

from crucible_train.container import ResolvedConfig
from crucible_train.core.completers import SamplingCompleter
from crucible_train.core.evaluation import REPEAT_KEY, EvalSample, input_messages
from crucible_train.core.renderers import get_renderer
from crucible_train.entrypoints.eval_models import EvalModel
from crucible_train.ports.llm import LLMParams
from crucible_train.types import SamplingParams

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Answerer",
    "SamplingOptions",
    "add_sampling_arguments",
    "build_generator",
    "input_seed",
    "sampling_options_from_args",
]

DEFAULT_MAX_TOKENS = 256
"""``--max-tokens`` for a model: room for a short answer (a sample that reaches it is cut)."""

Ask = Callable[[Sequence[Mapping[str, Any]], int, str], list[str]]
"""``ask(messages, k, key)``: ``k`` answers (texts) to the conversation of input ``key``."""


def input_seed(seed: int, key: str) -> int:
    """The seed one input is sampled with: ``--seed`` and the input's id, hashed.

    Each input gets its own stream of random draws (one seed for all would draw the same
    numbers for every prompt, correlating their samples), and the same ``--seed`` gives
    the same answers to an input whatever the file's order or ``--resume``.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@attrs.frozen(kw_only=True)
class SamplingOptions:
    """The command's sampling options; ``None`` is "not given"."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    num_samples: int = 1

    def given(self) -> dict[str, Any]:
        """The settings given on the command line (``num_samples`` aside)."""
        settings = attrs.asdict(self)
        del settings["num_samples"]
        return {key: value for key, value in settings.items() if value is not None}

    def for_model(self) -> SamplingParams:
        """The settings a model is sampled with: greedy, ``DEFAULT_MAX_TOKENS`` unless given.

        Raises:
            InvalidDataError: a value out of range (the message names it).
        """
        return SamplingParams(
            temperature=0.0 if self.temperature is None else self.temperature,
            max_tokens=DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
        )


def add_sampling_arguments(command: argparse.ArgumentParser) -> None:
    """The ``--temperature``, ``--max-tokens``, ``--top-p``, ``--seed``, ``--num-samples``."""
    group = command.add_argument_group(
        "sampling", "how --model/--model-path are sampled (the llm backend gets those given)"
    )
    group.add_argument(
        "--temperature", type=float, metavar="T", help="0 is greedy (a model's default)"
    )
    group.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help=f"most tokens per answer (a model's default: {DEFAULT_MAX_TOKENS})",
    )
    group.add_argument("--top-p", type=float, metavar="P", help="nucleus mass kept (default 1)")
    group.add_argument(
        "--seed", type=int, metavar="N", help="makes sampling at a temperature above 0 repeatable"
    )
    group.add_argument(
        "--num-samples",
        type=int,
        default=1,
        metavar="K",
        help="answers per input, each scored as <id>#0 ... <id>#K-1, so the mean score "
        "averages them (default 1)",
    )


def sampling_options_from_args(args: Any) -> SamplingOptions:
    """The :class:`SamplingOptions` of a parsed command line."""
    return SamplingOptions(
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        top_p=args.top_p,
        seed=args.seed,
        num_samples=args.num_samples,
    )


class Answerer:
    """The batch runner's ``generate``: one sample's answer from ``ask``.

    A sample repeated by :func:`~crucible_train.core.evaluation.repeat_sample` (K copies
    of one input) is answered from one ``ask(messages, K, id)`` call: the first copy to
    arrive asks, the others wait for its answers and take theirs by index (the runner's
    threads start samples in order, so the asking copy is always running). Thread-safe.

    Args:
        ask: ``ask(messages, k, key)`` returns ``k`` answers to the conversation of the
            input whose id is ``key``.
    """

    def __init__(self, ask: Ask) -> None:
        self._ask = ask
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Future[list[str]], set[int]]] = {}

    def __call__(self, sample: EvalSample) -> str:
        """The answer to ``sample`` (its input as messages).

        Raises:
            InvalidDataError: the sample has no input.
        """
        messages = input_messages(sample)
        repeat = sample.metadata.get(REPEAT_KEY)
        if repeat is None:
            return self._ask(messages, 1, sample.id)[0]
        key, index, count = repeat
        with self._lock:
            entry = self._pending.get(key)
            asks = entry is None
            if entry is None:
                entry = (Future(), set(range(count)))
                self._pending[key] = entry
            answers, waiting = entry
            waiting.discard(index)
            if not waiting:  # the last copy: nobody else needs the entry
                del self._pending[key]
        if asks:
            try:
                answers.set_result(self._ask(messages, count, key))
            except BaseException as exc:  # every copy reports the failure
                answers.set_exception(exc)
        answer: str = answers.result()[index]
        return answer


def build_generator(
    resolved: ResolvedConfig,
    container: Any,
    model: EvalModel | None,
    options: SamplingOptions,
) -> tuple[Answerer, dict[str, Any]]:
    """The ``generate`` function, and what decides its answers (for the run fingerprint).

    Args:
        resolved: the configuration (with the model's updates) the container was built from.
        container: the application container (its ``sampling``/``tokenizer`` or ``llm``).
        model: the model to sample, or ``None`` for the ``llm`` backend.
        options: the sampling options.

    Raises:
        ConfigurationError: an unknown renderer, or a backend that cannot be built (the
            model directory is not readable, a package is missing).
        InvalidDataError: a sampling option out of range.
    """
    config = resolved.as_dict()
    if model is None:
        given = options.given()
        llm = container.llm()

        def ask_llm(messages: Sequence[Mapping[str, Any]], count: int, key: str) -> list[str]:
            answers = []
            for index in range(count):
                settings = dict(given)
                if options.seed is not None:  # K calls with one seed would agree
                    settings["seed"] = input_seed(options.seed, f"{key}#{index}")
                params = LLMParams(**settings) if settings else None
                answers.append(llm.chat(messages, params).text)
            return answers

        extra: dict[str, Any] = {"llm": config["llm"]}
        if given or options.num_samples != 1:  # earlier runs' fingerprints stay the same
            extra.update(sampling=given, num_samples=options.num_samples)
        return Answerer(ask_llm), extra
    params_for_model = options.for_model()
    renderer = str(config["train"]["renderer"])
    completer = SamplingCompleter(
        sampling=container.sampling(),
        renderer=get_renderer(renderer, container.tokenizer()),
        params=params_for_model,
    )

    def ask_model(messages: Sequence[Mapping[str, Any]], count: int, key: str) -> list[str]:
        seed = None if options.seed is None else input_seed(options.seed, key)
        # One call: the K answers decode as one batch and differ (one generator).
        answers = completer.chat_samples(messages, count, LLMParams(seed=seed))
        return [answer.text for answer in answers]

    tokenizer = config["tokenizer"]
    backend = tokenizer["backend"]
    extra = {
        "model": dict(model.identity),
        "renderer": renderer,
        "tokenizer": {backend: tokenizer.get(backend)},
        "sampling": attrs.asdict(params_for_model),
        "num_samples": options.num_samples,
    }
    return Answerer(ask_model), extra
