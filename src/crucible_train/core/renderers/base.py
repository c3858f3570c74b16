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
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.core.renderers.messages import Message, TrainOnWhat, to_messages
from crucible_train.errors import InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer
from crucible_train.types import EncodedTextChunk, ModelInput

__all__ = ["Conversation", "Piece", "Renderer", "split_at_stop"]


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

    #: How to fix a refused reasoning target (see :meth:`_writes_final_reasoning`).
    reasoning_hint: str = (
        "remove reasoning_content from that turn, or use a renderer of a format with reasoning"
    )

    def _writes_final_reasoning(self, messages: list[Message]) -> bool:
        """Whether the final assistant turn's reasoning appears in its supervised example.

        Formats without reasoning (or that drop it in this position) return ``False``;
        a *trained* final turn with reasoning is then refused instead of silently
        teaching the model to answer without it.
        """
        return True

    def _inline_reasoning(self, messages: list[Message]) -> bool:
        """Whether the final turn's content carries reasoning inline (e.g. before a
        ``</think>``) that this format would strip; default: no."""
        return False

    def _check_supervised(self, messages: list[Message]) -> None:  # noqa: B027 - optional hook
        """Refuse conversations this format cannot train on (default: accept all)."""

    # --- token helpers ----------------------------------------------------------------

    def _special_id(self, text: str) -> int | None:
        """Id of a special token, or ``None`` when the vocabulary lacks it."""
        return self._tokenizer.special_tokens.get(text)

    def _plan_pieces(self, pieces: Sequence[Piece], plan: list[_Step]) -> None:
        """Append to ``plan`` the steps that encode ``pieces`` as one run.

        Text between special tokens becomes one plain run: tokenizers split special
        tokens out before pre-tokenizing, so this equals encoding the whole string. A
        special piece is its id, or, when the vocabulary lacks it, its text encoded with
        specials allowed.
        """
        special_id = self._special_id
        buffer: list[str] = []
        for piece in pieces:
            if not piece.special:
                buffer.append(piece.text)
                continue
            if buffer:
                plan.append("".join(buffer))
                buffer = []
            token = special_id(piece.text)
            plan.append(_SpecialText(piece.text) if token is None else token)
        if buffer:
            plan.append("".join(buffer))

    def _encode_plans(self, plans: Sequence[Sequence[_Step]]) -> list[list[int]]:
        """Token ids of every plan.

        Each distinct text run of all the plans is encoded once, with one
        ``encode_batch`` call per ``allow_special`` value: a batch of many
        conversations repeats runs (the text between turns, tool specs) and the
        tokenizer may encode a batch on several cores.
        """
        plain: dict[str, list[int]] = {}
        literal: dict[str, list[int]] = {}
        for plan in plans:
            for step in plan:
                if type(step) is str:
                    plain[step] = _EMPTY
                elif type(step) is _SpecialText:
                    literal[step.text] = _EMPTY
        for table, allow_special in ((plain, False), (literal, True)):
            if table:
                texts = list(table)
                table.update(zip(texts, self._encode_batch(texts, allow_special), strict=True))
        out: list[list[int]] = []
        for plan in plans:
            tokens: list[int] = []
            for step in plan:
                if type(step) is str:
                    tokens += plain[step]
                elif type(step) is int:
                    tokens.append(step)
                else:
                    tokens += literal[step.text]  # type: ignore[union-attr]
            out.append(tokens)
        return out

    def _encode_batch(self, texts: list[str], allow_special: bool) -> list[list[int]]:
        """``tokenizer.encode_batch``; text by text for a duck-typed tokenizer without it."""
        batch = getattr(self._tokenizer, "encode_batch", None)
        if batch is None:
            encode = self._tokenizer.encode
            return [encode(text, allow_special=allow_special) for text in texts]
        result: list[list[int]] = batch(texts, allow_special=allow_special)
        return result

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
        item = _Conversation(messages=to_messages(messages), tools=tools, prefill=prefill)
        return ModelInput.from_ints(self._generation_tokens([item])[0])

    def build_generation_prompts(
        self,
        conversations: Sequence[Conversation],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[ModelInput]:
        """:meth:`build_generation_prompt` of many conversations, with identical tokens.

        Faster than one call per conversation: the text runs of all the conversations
        are encoded together (each distinct run once, in one tokenizer batch call).

        Args:
            conversations: each item is a message list, or a mapping
                ``{"messages": [...], "tools": [...], "prefill": "..."}`` (``tools`` and
                ``prefill`` optional; a mapping's ``tools``, even ``None``, replaces the
                shared ``tools``).
            tools: tool specs of every conversation that does not bring its own.

        Returns:
            One prompt per conversation, in order.

        Raises:
            ConfigurationError: a message has an unknown role.
            InvalidDataError: an item is malformed or cannot be rendered in this format
                (the error's note names the conversation's index).
        """
        items = _conversations(conversations, tools, prefill=True)
        if type(self).build_generation_prompt is not Renderer.build_generation_prompt:
            # The subclass post-processes each prompt (e.g. image chunks); keep its output.
            return [self.build_generation_prompt(c.messages, c.tools, c.prefill) for c in items]
        return [ModelInput.from_ints(tokens) for tokens in self._generation_tokens(items)]

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
        item = _Conversation(messages=to_messages(messages), tools=tools, prefill=None)
        return self._supervised_examples([item], mode)[0]

    def build_supervised_examples(
        self,
        conversations: Sequence[Conversation],
        train_on_what: TrainOnWhat | str = TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[tuple[ModelInput, npt.NDArray[np.float32]]]:
        """:meth:`build_supervised_example` of many conversations, with identical output.

        Faster than one call per conversation, for the reason given in
        :meth:`build_generation_prompts`.

        Args:
            conversations: each item is a message list or a mapping
                ``{"messages": [...], "tools": [...]}`` (``tools`` optional, and when
                present it replaces the shared ``tools``).
            train_on_what: the training mode of every conversation.
            tools: tool specs of every conversation that does not bring its own.

        Returns:
            ``(tokens, weights)`` per conversation, in order.

        Raises:
            ConfigurationError: unknown ``train_on_what``.
            InvalidDataError: an item is malformed, ``trainable`` flags do not fit the
                mode, or a conversation cannot be trained on in this format (the error's
                note names the conversation's index).
        """
        mode = TrainOnWhat.parse(train_on_what)
        items = _conversations(conversations, tools, prefill=False)
        if type(self).build_supervised_example is not Renderer.build_supervised_example:
            # The subclass post-processes each example (e.g. image chunks); keep its output.
            return [self.build_supervised_example(c.messages, mode, c.tools) for c in items]
        return self._supervised_examples(items, mode)

    # --- plan, encode, assemble (shared by the single and the batch methods) ---------

    def _generation_tokens(self, items: Sequence[_Conversation]) -> list[list[int]]:
        """Token ids of the generation prompt of each conversation."""
        plans: list[list[_Step]] = []
        for index, item in enumerate(items):
            plan: list[_Step] = []
            with _blame(index, len(items)):
                self._plan_pieces(self._pieces(item.messages, item.tools, generation=True), plan)
            if item.prefill:
                plan.append(item.prefill)  # its own plain run, as the model continues it
            plans.append(plan)
        return self._encode_plans(plans)

    def _supervised_examples(
        self, items: Sequence[_Conversation], mode: TrainOnWhat
    ) -> list[tuple[ModelInput, npt.NDArray[np.float32]]]:
        """Tokens and weights of each conversation (all runs encoded in one batch)."""
        plans: list[list[_Step]] = []
        # Per conversation: (weight, plan index) of each equal-weight run, and the plan
        # index of the generation prompt whose tokens must stay untrained (or None).
        layouts: list[tuple[list[tuple[float, int]], int | None]] = []
        for index, item in enumerate(items):
            with _blame(index, len(items)):
                layouts.append(self._plan_supervised(item, mode, plans))
        encoded = self._encode_plans(plans)
        out: list[tuple[ModelInput, npt.NDArray[np.float32]]] = []
        for runs, prompt_plan in layouts:
            tokens: list[int] = []
            token_weights: list[float] = []
            for weight, plan_index in runs:
                run = encoded[plan_index]
                tokens += run
                token_weights += [weight] * len(run)
            weights = np.asarray(token_weights, dtype=np.float32)
            if prompt_plan is not None:
                prompt = encoded[prompt_plan]
                if tokens[: len(prompt)] == prompt:
                    weights[: len(prompt)] = 0.0
            chunks = (EncodedTextChunk(tokens=tokens),) if tokens else ()
            out.append((ModelInput(chunks=chunks), weights))
        return out

    def _plan_supervised(
        self, item: _Conversation, mode: TrainOnWhat, plans: list[list[_Step]]
    ) -> tuple[list[tuple[float, int]], int | None]:
        """Validate one conversation and append the plans of its runs to ``plans``.

        Runs of equal weight are planned separately (a trained span never shares a token
        with an untrained one). Returns each run's ``(weight, plan index)`` and the plan
        index of the prompt prefix to keep untrained (see :meth:`_prompt_boundary`).
        """
        msgs = item.messages
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
        last = msgs[-1] if msgs else None
        if (
            last is not None
            and last.role == "assistant"
            and (last.reasoning_content or self._inline_reasoning(msgs))
            and (
                bool(last.trainable)
                if customized
                else mode is not TrainOnWhat.ALL_USER_AND_SYSTEM_MESSAGES
            )
            and not self._writes_final_reasoning(msgs)
        ):
            raise InvalidDataError(
                f"messages[{len(msgs) - 1}] is the trained final assistant turn and has "
                f"reasoning_content, which {self.name} cannot write (the model would learn "
                f"to answer without it); {self.reasoning_hint}"
            )
        self._check_supervised(msgs)
        turn_start = _last_user_index(msgs[:-1]) + 1
        pieces = self._pieces(msgs, item.tools, generation=False)
        weights = [self._weight(p, msgs, mode, turn_start) for p in pieces]
        runs: list[tuple[float, int]] = []
        start = 0
        for end in range(1, len(pieces) + 1):
            if end == len(pieces) or weights[end] != weights[start]:
                plan: list[_Step] = []
                self._plan_pieces(pieces[start:end], plan)
                runs.append((weights[start], len(plans)))
                plans.append(plan)
                start = end
        boundary = self._prompt_boundary(msgs, mode, turn_start)
        if boundary is None:
            return runs, None
        prompt: list[_Step] = []
        self._plan_pieces(self._pieces(msgs[:boundary], item.tools, generation=True), prompt)
        plans.append(prompt)
        return runs, len(plans) - 1

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

    @staticmethod
    def _prompt_boundary(msgs: list[Message], mode: TrainOnWhat, turn_start: int) -> int | None:
        """Never train what the generation prompt supplies (e.g. a prefilled think block).

        Returns the index of the first trained assistant message when the mode trains
        only the end of the conversation, else ``None``. The example's weights are zeroed
        over the generation prompt of the messages before it, when the example's tokens
        start with that prompt.
        """
        if mode is TrainOnWhat.LAST_ASSISTANT_MESSAGE:
            boundary = len(msgs) - 1
        elif mode is TrainOnWhat.LAST_ASSISTANT_TURN:
            boundary = turn_start
        else:
            return None
        if boundary < 0 or boundary >= len(msgs) or msgs[boundary].role != "assistant":
            return None
        return boundary


Conversation = Sequence[Mapping[str, Any] | Message] | Mapping[str, Any]
"""An item of the batch methods: a message list, or ``{"messages": ..., "tools": ...}``."""


@attrs.frozen(kw_only=True)
class _Conversation:
    """One validated conversation of a call, with its tools and (generation) prefill."""

    messages: list[Message]
    tools: Sequence[Mapping[str, Any]] | None
    prefill: str | None


@attrs.frozen
class _SpecialText:
    """A plan step: template special-token text the vocabulary lacks as a special token,
    encoded with specials allowed."""

    text: str


# A plan step: a token id, plain text (encoded with specials NOT allowed) or _SpecialText.
_Step = int | str | _SpecialText
_EMPTY: list[int] = []


def _conversations(
    conversations: Sequence[Conversation],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    prefill: bool,
) -> list[_Conversation]:
    """Validate the items of a batch call (see :meth:`Renderer.build_generation_prompts`)."""
    if isinstance(conversations, Mapping | str):
        raise InvalidDataError(
            f"conversations: expected a list of conversations, got {type(conversations).__name__}"
        )
    keys = {"messages", "tools", "prefill"} if prefill else {"messages", "tools"}
    out: list[_Conversation] = []
    for index, item in enumerate(conversations):
        with _blame(index, len(conversations)):
            if isinstance(item, Mapping):
                unknown = sorted(set(item) - keys, key=str)
                if unknown or "messages" not in item:
                    raise InvalidDataError(
                        f"conversations[{index}]: expected a message list or a mapping with "
                        f"'messages' and optionally {sorted(keys - {'messages'})}, "
                        f"got keys {sorted(item, key=str)}"
                    )
                out.append(
                    _Conversation(
                        messages=to_messages(item["messages"]),
                        tools=item.get("tools", tools),
                        prefill=item.get("prefill"),
                    )
                )
            else:
                out.append(_Conversation(messages=to_messages(item), tools=tools, prefill=None))
    return out


@contextlib.contextmanager
def _blame(index: int, count: int) -> Iterator[None]:
    """Note on an error which conversation of a batch caused it (types are kept)."""
    try:
        yield
    except Exception as exc:
        if count > 1:
            exc.add_note(f"in conversations[{index}]")
        raise


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
