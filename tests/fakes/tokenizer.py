"""FakeTokenizer: UTF-8 bytes plus a few special tokens; records what it encoded."""

from __future__ import annotations

from collections.abc import Sequence

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer

DEFAULT_SPECIALS: tuple[str, ...] = ("<eot>", "<eos>")
"""The fake's special tokens: ids 256 (``<eot>``) and 257 (``<eos>``)."""


class FakeTokenizer(ByteLevelTokenizer):
    """The byte-level vocabulary (ids 0-255 are bytes, so ASCII ids are code points) with
    short special tokens from 256, and ``eos`` as the end-of-sequence token.

    Records :attr:`encoded` (each text given to ``encode``, batches included) and
    :attr:`decoded` (each id list given to ``decode``).
    """

    def __init__(
        self, *, special_tokens: Sequence[str] = DEFAULT_SPECIALS, eos: str | None = "<eos>"
    ) -> None:
        super().__init__(special_tokens=special_tokens)
        self._eos_id = None if eos is None else self.special_tokens[eos]
        self.encoded: list[str] = []
        self.decoded: list[list[int]] = []

    @property
    def eos_token_id(self) -> int | None:
        """The id of ``eos``."""
        return self._eos_id

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Byte-level ids of ``text`` (recorded)."""
        self.encoded.append(text)
        return super().encode(text, allow_special=allow_special)

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` (recorded)."""
        self.decoded.append(list(tokens))
        return super().decode(tokens)
