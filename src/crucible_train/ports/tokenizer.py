"""Port: a tokenizer that maps text to token ids and back.

A new adapter must guarantee: ``encode`` never splits a registered special token that
appears in its input when ``allow_special`` is true; ``decode(encode(s)) == s`` for any
text the vocabulary can represent; ``encode_batch(texts)[i] == encode(texts[i])``;
encoding is deterministic and thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Tokenizer"]


@runtime_checkable
class Tokenizer(Protocol):
    """Encodes and decodes text for one vocabulary. Thread-safe and picklable."""

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included (ids are ``0 .. vocab_size-1``)."""
        ...

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Special token text → id (``<|im_start|>`` → 151644, ...)."""
        ...

    @property
    def eos_token_id(self) -> int | None:
        """The end-of-sequence id, or ``None`` when the vocabulary has none."""
        ...

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Token ids of ``text``; no BOS is added (renderers add what their format needs).

        Args:
            text: the text to encode.
            allow_special: when true, special-token text in ``text`` becomes the special
                token's id; when false it is encoded as ordinary text.

        Raises:
            TokenizerError: the text cannot be encoded.
        """
        ...

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        """Token ids of each text, in order: element ``i`` equals ``encode(texts[i], ...)``.

        The batch form exists for speed (one call across the texts, which an adapter may
        encode in parallel); it never changes a token. Renderers encode all the text runs
        of many conversations with one call.

        Args:
            texts: the texts to encode; may be empty, and may contain empty strings.
            allow_special: as in :meth:`encode`, applied to every text.

        Raises:
            TokenizerError: a text cannot be encoded.
        """
        ...

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``, special tokens included as their text.

        Raises:
            TokenizerError: an id is outside ``0 .. vocab_size-1``.
        """
        ...
