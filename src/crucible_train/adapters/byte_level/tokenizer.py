"""Byte-level tokenizer: ids 0-255 are bytes, registered special tokens follow from 256.

The embedded default vocabulary: needs no files, so tests and the ``local_torch`` random
models can run end to end. Decoding a byte sequence that is not valid UTF-8 (only
possible for hand-made or sampled ids) replaces the broken bytes with U+FFFD
(``errors="replace"``) instead of failing, because samplers can emit any byte sequence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from crucible_train.errors import ConfigurationError, TokenizerError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["DEFAULT_SPECIAL_TOKENS", "ByteLevelTokenizer"]

DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|pad|>",
)
"""Special tokens of the default vocabulary, ids 256, 257, 258, 259."""

_BYTES = 256
_EOS_TEXT = "<|endoftext|>"


class ByteLevelTokenizer(Tokenizer):
    """UTF-8 bytes plus special tokens; immutable, so thread-safe and picklable.

    Args:
        special_tokens: special token texts, given ids ``256, 257, ...`` in this order.
        vocab_size: pads the vocabulary to this many ids (unused ids decode to nothing
            and are never produced); ``None`` means ``256 + len(special_tokens)``.

    Raises:
        ConfigurationError: a special token is empty or repeated, or ``vocab_size`` is
            smaller than ``256 + len(special_tokens)``.
    """

    def __init__(
        self,
        *,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        vocab_size: int | None = None,
    ) -> None:
        specials = tuple(special_tokens)
        if isinstance(special_tokens, str) or any(
            not isinstance(s, str) or not s for s in specials
        ):
            raise ConfigurationError("special_tokens: expected a list of non-empty strings")
        if len(set(specials)) != len(specials):
            raise ConfigurationError("special_tokens: every special token must be unique")
        minimum = _BYTES + len(specials)
        if vocab_size is None:
            vocab_size = minimum
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise ConfigurationError(f"vocab_size: expected an integer, got {vocab_size!r}")
        if vocab_size < minimum:
            raise ConfigurationError(
                f"vocab_size: must be at least 256 + {len(specials)} special tokens "
                f"= {minimum}, got {vocab_size}"
            )
        self._specials = specials
        self._vocab_size = vocab_size
        self._ids = {text: _BYTES + index for index, text in enumerate(specials)}
        self._texts = {token: text.encode("utf-8") for text, token in self._ids.items()}
        # Longest first: the regex alternation takes the first alternative that matches,
        # so a special that is a prefix of another never splits the longer one.
        ordered = sorted(specials, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(text) for text in ordered)) if specials else None
        )

    @property
    def vocab_size(self) -> int:
        """``256 + len(special_tokens)``, or the larger ``vocab_size`` given."""
        return self._vocab_size

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Special token text → id (``256`` upwards, in the order given)."""
        return MappingProxyType(self._ids)

    @property
    def eos_token_id(self) -> int | None:
        """The id of ``<|endoftext|>`` when registered, else ``None``."""
        return self._ids.get(_EOS_TEXT)

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """UTF-8 bytes of ``text``; special-token text becomes its id when ``allow_special``.

        Raises:
            TokenizerError: ``text`` is not a string or holds lone surrogates.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        try:
            if not allow_special or self._pattern is None:
                return list(text.encode("utf-8"))
            tokens: list[int] = []
            start = 0
            for match in self._pattern.finditer(text):
                tokens.extend(text[start : match.start()].encode("utf-8"))
                tokens.append(self._ids[match.group()])
                start = match.end()
            tokens.extend(text[start:].encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise TokenizerError(f"text is not encodable as UTF-8: {exc}") from exc
        return tokens

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        """Token ids of each text, as :meth:`encode` gives them (pure Python, a loop).

        Raises:
            TokenizerError: an element is not a string or holds lone surrogates.
        """
        return [self.encode(text, allow_special=allow_special) for text in texts]

    def decode(self, tokens: Sequence[int]) -> str:
        """Bytes joined and decoded as UTF-8 (``errors="replace"``), specials as their text.

        Raises:
            TokenizerError: an id is outside ``0 .. vocab_size-1``.
        """
        out = bytearray()
        for token in tokens:
            if isinstance(token, bool) or not 0 <= token < self._vocab_size:
                raise TokenizerError(f"token id {token!r} is outside 0..{self._vocab_size - 1}")
            if token < _BYTES:
                out.append(token)
            else:
                # Padding ids beyond the specials carry no text.
                out += self._texts.get(token, b"")
        return out.decode("utf-8", errors="replace")
