"""The Renderer base class: conversation → token pieces → prompts and weighted examples.

A renderer describes a conversation as an ordered list of :class:`Piece` s. Each piece
belongs to a message (or to template boilerplate) and is either part of that message's
*header* (role markers; never trained except under ``ALL_TOKENS``) or its *output*
(body and end-of-turn token; trained when the mode selects the message). Everything
else — generation prompts, supervised examples and their weights — is derived here, so
a supervised example's untrained prefix is, by construction, the same text as the
generation prompt of the preceding messages.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.core.renderers.messages import Message, TrainOnWhat, to_messages
from crucible_train.errors import InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer
from crucible_train.types import EncodedTextChunk, ModelInput

__all__ = ["Piece", "Renderer", "split_at_stop"]


@attrs.frozen
class Piece:
    """A span of rendered text.

    Attributes:
        text: the text.
        special: the text is one special token of the template (looked up by id, so
            message text can never forge one).
        message: index of the message it belongs to; ``None`` for template boilerplate.
        output: part of the message's trainable output rather than its header.
        bos: the beginning-of-sequence token (never trained).
    """

    text: str
    special: bool = False
    message: int | None = None
    output: bool = False
    bos: bool = False


class Renderer(abc.ABC):
    """Base class of the chat renderers; subclasses implement :meth:`_pieces`.

    Args:
        tokenizer: the model's tokenizer.

    Thread-safe: renderers hold no mutable state.
    """

    #: Registry name, set by subclasses.
    name: str = ""
    #: Texts of the special tokens the format writes (e.g. to build a byte-level
    #: vocabulary that holds them); subclasses list theirs. Not used for rendering.
    special_token_texts: tuple[str, ...] = ()

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer of the rendered model."""
        return self._tokenizer

    # --- subclass hooks ---------------------------------------------------------------

    @abc.abstractmethod
    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        """Render ``messages``; with ``generation`` also the next assistant header."""

    @abc.abstractmethod
    def get_stop_sequences(self) -> list[int] | list[str]:
        """Token ids or strings that end an assistant turn."""

    @abc.abstractmethod
    def parse_response(self, tokens: Sequence[int]) -> tuple[dict[str, Any], bool]:
        """The assistant message in sampled ``tokens`` and whether it parsed cleanly.

        Never raises: malformed output gives ``ok=False`` and the decoded text.
        """

    def _check_supervised(self, messages: list[Message]) -> None:  # noqa: B027 - optional hook
        """Refuse conversations this format cannot train on (default: accept all)."""

    # --- token helpers ----------------------------------------------------------------

    def _special_id(self, text: str) -> int | None:
        """Id of a special token, or ``None`` when the vocabulary lacks it."""
        return self._tokenizer.special_tokens.get(text)

    def _encode_pieces(
        self, pieces: Sequence[Piece], cache: dict[tuple[str, bool], list[int]] | None = None
    ) -> list[int]:
        """Encode pieces as one run.

        Text between special tokens is encoded in one call: tokenizers split special
        tokens out before pre-tokenizing, so this equals encoding the whole string.
        ``cache`` (text, allow_special) → ids memoizes encodings within one public call
        (encoding is deterministic, so the ids are the same either way).
        """
        if cache is None:
            cache = {}
        encode = self._tokenizer.encode
        special_id = self._special_id
        out: list[int] = []
        buffer: list[str] = []

        def plain(text: str, allow_special: bool) -> None:
            key = (text, allow_special)
            ids = cache.get(key)
            if ids is None:
                ids = cache[key] = encode(text, allow_special=allow_special)
            out.extend(ids)

        for piece in pieces:
            if not piece.special:
                buffer.append(piece.text)
                continue
            if buffer:
                plain("".join(buffer), False)
                buffer = []
            token = special_id(piece.text)
            if token is None:
                plain(piece.text, True)
            else:
                out.append(token)
        if buffer:
            plain("".join(buffer), False)
        return out

    def _decode_turn(self, tokens: Sequence[int], stop_text: str) -> tuple[str | None, bool]:
        """Text of a sampled turn before its stop token (``None`` if undecodable), and
        whether the turn ended with exactly one stop token."""
        body, ok = split_at_stop(tokens, self._stop_token(stop_text))
        return self._safe_decode(body), ok

    def _safe_decode(self, tokens: Sequence[int]) -> str | None:
        """Decoded text, or ``None`` when the ids are not decodable (parsing never raises)."""
        try:
            return self._tokenizer.decode(tokens)
        except Exception:  # any adapter failure just means a malformed sample
            return None

    def _stop_token(self, text: str) -> int:
        """Id of a single-token stop marker."""
        token = self._special_id(text)
        if token is None:
            ids = self._tokenizer.encode(text, allow_special=True)
            if len(ids) != 1:
                raise InvalidDataError(f"{text!r} is not one token in this vocabulary")
            token = ids[0]
        return token

    # --- public API -------------------------------------------------------------------

    def render_text(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        generation: bool = False,
    ) -> str:
        """The rendered text (for inspection and text-level tests)."""
        pieces = self._pieces(to_messages(messages), tools, generation=generation)
        return "".join(p.text for p in pieces)

    def build_generation_prompt(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        prefill: str | None = None,
    ) -> ModelInput:
        """The prompt that makes the model write the next assistant turn.

        Args:
            messages: the conversation so far.
            tools: tool specs the format declares (OpenAI ``{"type": "function", ...}``).
            prefill: text the assistant turn starts with (encoded as plain text).

        Raises:
            ConfigurationError: a message has an unknown role.
            InvalidDataError: a message cannot be rendered in this format.
        """
        tokens = self._encode_pieces(self._pieces(to_messages(messages), tools, generation=True))
        if prefill:
            tokens.extend(self._tokenizer.encode(prefill, allow_special=False))
        return ModelInput.from_ints(tokens)

    def build_supervised_example(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        train_on_what: TrainOnWhat | str = TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[ModelInput, npt.NDArray[np.float32]]:
        """Tokens of a whole conversation and a per-token loss weight.

        Runs of equal weight are encoded separately (a trained span never shares a
        token with an untrained one).

        Raises:
            ConfigurationError: unknown ``train_on_what``.
            InvalidDataError: ``trainable`` flags do not fit the mode, or the
                conversation cannot be trained on in this format.
        """
        mode = TrainOnWhat.parse(train_on_what)
        msgs = to_messages(messages)
        customized = mode is TrainOnWhat.CUSTOMIZED
        for i, m in enumerate(msgs):
            if customized and m.trainable is None:
                raise InvalidDataError(
                    f"messages[{i}] needs 'trainable' with train_on_what=customized"
                )
            if not customized and m.trainable is not None:
                raise InvalidDataError(
                    f"messages[{i}] has 'trainable'; "
                    "it is only allowed with train_on_what=customized"
                )
        self._check_supervised(msgs)
        turn_start = _last_user_index(msgs[:-1]) + 1
        pieces = self._pieces(msgs, tools, generation=False)
        weights = [self._weight(p, msgs, mode, turn_start) for p in pieces]
        tokens: list[int] = []
        token_weights: list[float] = []
        cache: dict[tuple[str, bool], list[int]] = {}
        start = 0
        for end in range(1, len(pieces) + 1):
            if end == len(pieces) or weights[end] != weights[start]:
                run = self._encode_pieces(pieces[start:end], cache)
                tokens.extend(run)
                token_weights.extend([weights[start]] * len(run))
                start = end
        out = np.asarray(token_weights, dtype=np.float32)
        self._zero_prompt_prefix(msgs, tools, mode, turn_start, tokens, out, cache)
        return ModelInput(chunks=(EncodedTextChunk(tokens=tokens),) if tokens else ()), out

    # --- weights ----------------------------------------------------------------------

    @staticmethod
    def _weight(piece: Piece, msgs: list[Message], mode: TrainOnWhat, turn_start: int) -> float:
        """Weight of one piece under ``mode`` (the reference TrainOnWhat rules)."""
        if piece.bos:
            return 0.0
        if piece.message is None or not piece.output:
            return 1.0 if mode is TrainOnWhat.ALL_TOKENS else 0.0
        idx = piece.message
        role = msgs[idx].role
        selected = {
            TrainOnWhat.LAST_ASSISTANT_MESSAGE: idx == len(msgs) - 1 and role == "assistant",
            TrainOnWhat.LAST_ASSISTANT_TURN: role == "assistant" and idx >= turn_start,
            TrainOnWhat.ALL_ASSISTANT_MESSAGES: role == "assistant",
            TrainOnWhat.ALL_MESSAGES: True,
            TrainOnWhat.ALL_TOKENS: True,
            TrainOnWhat.ALL_USER_AND_SYSTEM_MESSAGES: role in ("user", "system"),
            TrainOnWhat.CUSTOMIZED: bool(msgs[idx].trainable),
        }[mode]
        return 1.0 if selected else 0.0

    def _zero_prompt_prefix(
        self,
        msgs: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        mode: TrainOnWhat,
        turn_start: int,
        tokens: list[int],
        weights: npt.NDArray[np.float32],
        cache: dict[tuple[str, bool], list[int]] | None = None,
    ) -> None:
        """Never train what the generation prompt supplies (e.g. a prefilled think block).

        ``cache`` holds the encodings of the example's text runs, which the prompt's
        runs (the same text up to its generation header) mostly reuse.
        """
        if mode is TrainOnWhat.LAST_ASSISTANT_MESSAGE:
            boundary = len(msgs) - 1
        elif mode is TrainOnWhat.LAST_ASSISTANT_TURN:
            boundary = turn_start
        else:
            return
        if boundary < 0 or boundary >= len(msgs) or msgs[boundary].role != "assistant":
            return
        prompt = self._encode_pieces(self._pieces(msgs[:boundary], tools, generation=True), cache)
        if tokens[: len(prompt)] == prompt:
            weights[: len(prompt)] = 0.0


def _last_user_index(msgs: Sequence[Message]) -> int:
    """Index of the last user message, -1 if there is none."""
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].role == "user":
            return i
    return -1


def split_at_stop(tokens: Sequence[int], stop: int) -> tuple[list[int], bool]:
    """Tokens before the first ``stop`` and whether exactly one stop was present."""
    toks = [int(t) for t in tokens]
    count = toks.count(stop)
    if count == 0:
        return toks, False
    return toks[: toks.index(stop)], count == 1
