"""Noop tokenizer (adapter layer, no technology): an empty vocabulary that cannot encode.

``encode``, ``encode_batch`` and ``decode`` raise
:class:`~crucible_train.errors.BackendNotConfiguredError` naming ``tokenizer.backend``.
The properties describe an empty vocabulary instead of raising, because ``isinstance``
checks against runtime protocols read them on Python 3.11.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["NoopTokenizer"]

_PORT = "tokenizer"


class NoopTokenizer(Tokenizer):
    """A tokenizer with no tokens: ``vocab_size`` 0, no special tokens, no EOS."""

    @property
    def vocab_size(self) -> int:
        """0: the noop vocabulary holds no token ids."""
        return 0

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """An empty, read-only mapping."""
        return MappingProxyType({})

    @property
    def eos_token_id(self) -> int | None:
        """``None``: there is no end-of-sequence token."""
        return None

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "encode")

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "encode_batch")

    def decode(self, tokens: Sequence[int]) -> str:
        """Raise :class:`~crucible_train.errors.BackendNotConfiguredError`."""
        raise not_configured(_PORT, "decode")
