"""A Tokenizer-port stand-in over a ``tokenizer.json``, shared by the renderer parity tests.

It encodes with the ``tokenizers`` library directly (no adapter code), so the parity tests
check the renderers against the vocabulary itself. Import it after
``pytest.importorskip("tokenizers")``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tokenizers

from crucible_train.errors import TokenizerError


class TokenizersPort:
    """Tokenizer port over a ``tokenizer.json`` (test stand-in for the real adapter)."""

    def __init__(self, path: Path, eos: str) -> None:
        self._tok = tokenizers.Tokenizer.from_file(str(path))
        self._special = {t.content: i for i, t in self._tok.get_added_tokens_decoder().items()}
        self._eos = self._special[eos]

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return self._special

    @property
    def eos_token_id(self) -> int | None:
        return self._eos

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        self._tok.encode_special_tokens = not allow_special
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        finally:
            self._tok.encode_special_tokens = False

    def decode(self, tokens: Sequence[int]) -> str:
        if any(t < 0 or t >= self.vocab_size for t in tokens):
            raise TokenizerError("token id out of range")
        return str(self._tok.decode(list(tokens), skip_special_tokens=False))
