"""LLM clients built from core pieces: evaluate a locally trained model like an API model.

:class:`SamplingCompleter` implements the :class:`~crucible_train.ports.llm.LLMClient`
port over a :class:`~crucible_train.ports.sampling.SamplingClient` and a
:class:`ChatRenderer` (the chat template of the model being sampled), so evaluators that
take an ``LLMClient`` can score a model straight out of training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from crucible_train.errors import ConfigurationError, LLMClientError, SamplingClientError
from crucible_train.ports.llm import Completion, LLMClient, LLMParams
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.tokenizer import Tokenizer
from crucible_train.types import ModelInput, SamplingParams, TokensWithLogprobs

__all__ = ["PARSE_ERROR", "ChatRenderer", "SamplingCompleter"]

PARSE_ERROR = "parse_error"
"""``Completion.finish_reason`` when the renderer could not parse the sampled tokens."""


@runtime_checkable
class ChatRenderer(Protocol):
    """Turns a conversation into model tokens and sampled tokens back into a message."""

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer of the rendered model."""
        ...

    def build_generation_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        prefill: str | None = None,
    ) -> ModelInput:
        """The prompt that makes the model write the next assistant turn."""
        ...

    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """The assistant message in ``tokens`` and whether it parsed cleanly."""
        ...

    def get_stop_sequences(self) -> list[int] | list[str]:
        """Token ids or strings that end an assistant turn."""
        ...


class SamplingCompleter(LLMClient):
    """An :class:`~crucible_train.ports.llm.LLMClient` that samples a model directly.

    Args:
        sampling: the sampler of the model's current weights.
        renderer: the model's chat format; its stop sequences are added to
            ``params.stop``.
        params: sampling settings; ``LLMParams`` fields given to a call override them.

    Raises:
        ConfigurationError: ``params.stop`` and the renderer's stop sequences mix strings
            and token ids.

    Thread-safe when the sampling client is: it holds no mutable state.
    """

    def __init__(
        self, *, sampling: SamplingClient, renderer: ChatRenderer, params: SamplingParams
    ) -> None:
        self._sampling = sampling
        self._renderer = renderer
        self._params = attrs.evolve(
            params, stop=_merge_stops(params.stop, renderer.get_stop_sequences())
        )

    @property
    def params(self) -> SamplingParams:
        """The sampling settings in use (renderer stop sequences included)."""
        return self._params

    def chat(
        self, messages: Sequence[Mapping[str, Any]], params: LLMParams | None = None
    ) -> Completion:
        """Render ``messages``, sample one assistant turn and parse it.

        ``finish_reason`` is the sampler's stop reason, or ``"parse_error"`` when the
        renderer could not parse the turn (``text`` is then whatever it recovered).

        Raises:
            LLMClientError: sampling failed.
        """
        (completion,) = self.chat_samples(messages, 1, params)
        return completion

    def chat_samples(
        self,
        messages: Sequence[Mapping[str, Any]],
        num_samples: int,
        params: LLMParams | None = None,
    ) -> list[Completion]:
        """Like :meth:`chat`, with ``num_samples`` answers from one ``sample`` call.

        The answers are sampled together (one prompt, one batched decode on backends that
        batch), so with a ``seed`` they are reproducible as a set and differ from each
        other at a temperature above 0.

        Raises:
            LLMClientError: sampling failed or returned fewer sequences.
        """
        prompt = self._renderer.build_generation_prompt(messages)
        out = []
        for sequence in self._sample(prompt, params, num_samples):
            message, ok = self._renderer.parse_response(sequence.tokens)
            out.append(
                Completion(
                    text=_text(message.get("content")),
                    finish_reason=sequence.stop_reason if ok else PARSE_ERROR,
                    prompt_tokens=prompt.length,
                    completion_tokens=len(sequence.tokens),
                )
            )
        return out

    def complete(self, prompt: str, params: LLMParams | None = None) -> Completion:
        """Continue ``prompt`` as plain text (no chat template).

        Special-token text inside ``prompt`` is encoded as ordinary text, so data cannot
        inject control tokens. A final stop sequence is removed from ``text``, as OpenAI
        servers do.

        Raises:
            LLMClientError: sampling failed.
        """
        tokenizer = self._renderer.tokenizer
        model_input = ModelInput.from_ints(tokenizer.encode(prompt, allow_special=False))
        (sequence,) = self._sample(model_input, params)
        stops = self._effective(params).stop
        tokens = list(sequence.tokens)
        # Token-id stops (and EOS) are whole tokens: drop the final one.
        if (
            sequence.stop_reason == "stop"
            and tokens
            and (tokens[-1] in stops or tokens[-1] == tokenizer.eos_token_id)
        ):
            tokens.pop()
        text = tokenizer.decode(tokens)
        if sequence.stop_reason == "stop":
            for stop in stops:
                if isinstance(stop, str) and text.endswith(stop):
                    text = text[: -len(stop)]
                    break
        return Completion(
            text=text,
            finish_reason=sequence.stop_reason,
            prompt_tokens=model_input.length,
            completion_tokens=len(sequence.tokens),
        )

    # --- internals ---------------------------------------------------------------------

    def _effective(self, params: LLMParams | None) -> SamplingParams:
        if params is None:
            return self._params
        changes: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        changes = {key: value for key, value in changes.items() if value is not None}
        if params.stop:
            changes["stop"] = _merge_stops(self._params.stop, params.stop)
        return attrs.evolve(self._params, **changes)

    def _sample(
        self, prompt: ModelInput, params: LLMParams | None, num_samples: int = 1
    ) -> list[TokensWithLogprobs]:
        try:
            response = self._sampling.sample(prompt, num_samples, self._effective(params)).result()
        except SamplingClientError as exc:
            raise LLMClientError(f"sampling failed: {exc}") from exc
        if len(response.sequences) < num_samples:
            raise LLMClientError(
                f"the sampling client returned {len(response.sequences)} sequence(s) "
                f"for {num_samples} asked"
            )
        return list(response.sequences[:num_samples])


def _merge_stops(
    first: Sequence[str | int], second: Sequence[str | int]
) -> tuple[str, ...] | tuple[int, ...]:
    """``first`` then the new entries of ``second``; strings and ids must not mix."""
    merged: list[str | int] = list(first)
    for stop in second:
        if stop not in merged:
            merged.append(stop)
    strings = [stop for stop in merged if isinstance(stop, str)]
    ids = [stop for stop in merged if not isinstance(stop, str)]
    if strings and ids:
        raise ConfigurationError(
            f"stop sequences mix strings and token ids ({list(first)!r} and {list(second)!r}); "
            "give stops of the kind the renderer uses"
        )
    return tuple(strings) if strings else tuple(ids)


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""
