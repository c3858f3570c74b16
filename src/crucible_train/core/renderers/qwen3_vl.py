"""Qwen3-VL chat formats (Thinking and Instruct): the Qwen3 text skeleton plus images.

An image is a content part of a ``user`` or ``tool`` message, one of::

    {"type": "image", "image": b"<png or jpeg bytes>", "expected_tokens": 256}
    {"type": "image", "image": "/path/to/picture.png", "expected_tokens": 256}
    {"type": "image", "image": ..., "expected_tokens": 256, "format": "jpeg"}

``image`` is the file's bytes or a path (``str`` / ``os.PathLike``) read when the
input is built; ``format`` (``png`` / ``jpeg``) defaults to the one the bytes' magic
number (or the path's suffix) shows; ``expected_tokens`` is how many positions the
vision tower gives the image (the renderer cannot compute it). In the rendered text
an image is ``<|vision_start|><|image_pad|><|vision_end|>``, as in the templates; in
a :class:`~crucible_train.types.ModelInput` the ``<|image_pad|>`` becomes an
:class:`~crucible_train.types.ImageChunk` and its loss weight is repeated over the
image's positions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from crucible_train.core.renderers.base import Piece
from crucible_train.core.renderers.messages import Message, TrainOnWhat, to_messages
from crucible_train.core.renderers.qwen3 import Qwen3InstructRenderer, Qwen3Renderer
from crucible_train.errors import InvalidDataError
from crucible_train.types import EncodedTextChunk, ImageChunk, ModelInput, ModelInputChunk

__all__ = ["Qwen3VLInstructRenderer", "Qwen3VLRenderer", "image_chunk"]

_VISION_START = "<|vision_start|>"
_IMAGE_PAD = "<|image_pad|>"
_VISION_END = "<|vision_end|>"
# Stands for an image inside message text while the Qwen3 skeleton renders it; text
# holding it is refused, so it cannot forge an image.
_SENTINEL = "\x00qwen3-vl-image\x00"


def image_chunk(part: Mapping[str, Any]) -> ImageChunk:
    """The :class:`ImageChunk` an image content part describes (see the module doc).

    Raises:
        InvalidDataError: missing or malformed ``image`` / ``expected_tokens`` /
            ``format``, or an unreadable path.
    """
    raw = part.get("image")
    if isinstance(raw, str | os.PathLike):
        path = Path(raw)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidDataError(f"cannot read image {str(path)!r}: {exc}") from None
        suffix = path.suffix.lower().lstrip(".")
        guessed: str | None = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg"}.get(suffix)
    elif isinstance(raw, bytes | bytearray):
        data = bytes(raw)
        guessed = None
    else:
        raise InvalidDataError("an image part needs 'image': bytes or a file path")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        guessed = "png"
    elif data.startswith(b"\xff\xd8"):
        guessed = "jpeg"
    fmt = part.get("format", guessed)
    if fmt not in ("png", "jpeg"):
        raise InvalidDataError(f"image format {fmt!r} is not known; give 'format': 'png' or 'jpeg'")
    expected = part.get("expected_tokens")
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidDataError("an image part needs 'expected_tokens' as a whole number")
    fmt_lit: Literal["png", "jpeg"] = "png" if fmt == "png" else "jpeg"
    return ImageChunk(data=data, format=fmt_lit, expected_tokens=expected)


def _images(messages: Sequence[Message]) -> list[Mapping[str, Any]]:
    """The image parts of ``messages`` in rendering order."""
    return [
        p
        for m in messages
        if not isinstance(m.content, str)
        for p in m.content
        if p.get("type") == "image"
    ]


class _VisionMixin(Qwen3Renderer):
    """Image parts in user / tool messages; everything else is the Qwen3 skeleton."""

    # Qwen3Renderer's tuple literal gives mypy a fixed-length type; this one is longer.
    special_token_texts = (  # type: ignore[assignment]
        *Qwen3Renderer.special_token_texts,
        _VISION_START,
        _IMAGE_PAD,
        _VISION_END,
    )

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        flat = [self._flatten(m, i) for i, m in enumerate(messages)]
        out: list[Piece] = []
        for piece in super()._pieces(flat, tools, generation=generation):
            if piece.special or _SENTINEL not in piece.text:
                out.append(piece)
                continue
            parts = piece.text.split(_SENTINEL)
            for k, text in enumerate(parts):
                if k:
                    out += [
                        attrs.evolve(piece, text=t, special=True)
                        for t in (_VISION_START, _IMAGE_PAD, _VISION_END)
                    ]
                if text:
                    out.append(attrs.evolve(piece, text=text))
        return out

    @staticmethod
    def _flatten(m: Message, i: int) -> Message:
        """``m`` with text content; images become the sentinel."""
        if isinstance(m.content, str):
            if _SENTINEL in m.content:
                raise InvalidDataError(f"messages[{i}] contains a NUL-delimited image marker")
            return m
        texts: list[str] = []
        for part in m.content:
            if part.get("type") == "image":
                if m.role not in ("user", "tool"):
                    raise InvalidDataError(
                        f"messages[{i}] is a {m.role} message with an image; "
                        "images go in user or tool messages"
                    )
                texts.append(_SENTINEL)
            else:
                text = str(part["text"])
                if _SENTINEL in text:
                    raise InvalidDataError(f"messages[{i}] contains a NUL-delimited image marker")
                texts.append(text)
        return attrs.evolve(m, content="".join(texts))

    # --- ModelInputs with images --------------------------------------------------------

    def _with_images(
        self, messages: list[Message], tokens: list[int], weights: list[float] | None
    ) -> tuple[ModelInput, list[float]]:
        """Replace the ``<|image_pad|>`` ids of ``tokens`` by the messages' image chunks."""
        images = _images(messages)
        if not images:
            return ModelInput.from_ints(tokens) if tokens else ModelInput.empty(), weights or []
        pad = self._stop_token(_IMAGE_PAD)
        chunks: list[ModelInputChunk] = []
        out_weights: list[float] = []
        run: list[int] = []
        k = 0
        for pos, token in enumerate(tokens):
            w = weights[pos] if weights is not None else 0.0
            if token != pad:
                run.append(token)
                out_weights.append(w)
                continue
            if run:
                chunks.append(EncodedTextChunk(tokens=run))
                run = []
            chunk = image_chunk(images[k])
            k += 1
            chunks.append(chunk)
            out_weights.extend([w] * chunk.expected_tokens)
        if run:
            chunks.append(EncodedTextChunk(tokens=run))
        if k != len(images):  # cannot happen: each image renders one pad token
            raise InvalidDataError(f"{len(images)} images but {k} image positions")
        return ModelInput(chunks=tuple(chunks)), out_weights

    def build_generation_prompt(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        prefill: str | None = None,
    ) -> ModelInput:
        """The generation prompt; image parts become :class:`ImageChunk` s."""
        msgs = to_messages(messages)
        text_only = super().build_generation_prompt(msgs, tools, prefill)
        tokens = [t for c in text_only.chunks if isinstance(c, EncodedTextChunk) for t in c.tokens]
        return self._with_images(msgs, tokens, None)[0]

    def build_supervised_example(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        train_on_what: TrainOnWhat | str = TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[ModelInput, npt.NDArray[np.float32]]:
        """The supervised example; an image's positions take its pad token's weight."""
        msgs = to_messages(messages)
        text_only, weights = super().build_supervised_example(msgs, train_on_what, tools)
        tokens = [t for c in text_only.chunks if isinstance(c, EncodedTextChunk) for t in c.tokens]
        model_input, out = self._with_images(msgs, tokens, [float(w) for w in weights])
        return model_input, np.asarray(out, dtype=np.float32)


class Qwen3VLRenderer(_VisionMixin):
    """Qwen3-VL Thinking: Qwen3's think framing; the prompt prefills ``<think>\\n``."""

    name = "qwen3_vl"

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        pieces = super()._pieces(messages, tools, generation=generation)
        if generation:
            pieces += [Piece("<think>", special=True), Piece("\n")]
        return pieces


class Qwen3VLInstructRenderer(_VisionMixin, Qwen3InstructRenderer):
    """Qwen3-VL Instruct: no ``<think>`` blocks; assistant text is rendered verbatim."""

    name = "qwen3_vl_instruct"
    reasoning_hint = (
        "Qwen3-VL Instruct never thinks; remove reasoning_content from that turn, or "
        "train Qwen3-VL Thinking with qwen3_vl"
    )

    def _pieces(
        self,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        generation: bool,
    ) -> list[Piece]:
        for i, m in enumerate(messages):
            if m.role == "system" and i > 0:
                raise InvalidDataError(
                    f"messages[{i}]: the Qwen3-VL Instruct template drops system "
                    "messages after the first"
                )
        # The template prints assistant text as is: no reasoning is split out of it.
        fixed = [
            attrs.evolve(m, reasoning_content="") if m.role == "assistant" else m for m in messages
        ]
        return super()._pieces(fixed, tools, generation=generation)
