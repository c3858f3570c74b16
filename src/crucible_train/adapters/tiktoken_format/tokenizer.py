"""Tokenizer over a local tiktoken rank file (``o200k_base.tiktoken``, optionally gzipped).

The ranks are handed to ``tiktoken.Encoding`` directly, so nothing is downloaded.
Special-token handling: ``allow_special=True`` encodes with ``allowed_special="all"`` (the
text of a registered special becomes its id); ``allow_special=False`` encodes with
``disallowed_special=()``, so that text is tokenized as ordinary text instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from crucible_train.errors import AdapterUnavailableError, ConfigurationError, TokenizerError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["O200K_PATTERN", "PRESETS", "TiktokenFileTokenizer"]

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
"""The o200k_base pre-tokenization regex (copied from tiktoken's ``openai_public.py``)."""

_O200K_SPECIALS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}

# Exactly tiktoken 0.14's o200k_harmony table (tiktoken_ext/openai_public.py), including
# its quirk that <|endofprompt|> and <|reserved_200018|> both map to 200018.
_HARMONY_SPECIALS = {
    **_O200K_SPECIALS,
    "<|startoftext|>": 199998,
    "<|endoftext|>": 199999,
    "<|reserved_200000|>": 200000,
    "<|reserved_200001|>": 200001,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|reserved_200004|>": 200004,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|reserved_200009|>": 200009,
    "<|reserved_200010|>": 200010,
    "<|reserved_200011|>": 200011,
    "<|call|>": 200012,
} | {f"<|reserved_{i}|>": i for i in range(200013, 201088)}

PRESETS: Mapping[str, tuple[Mapping[str, int], str]] = MappingProxyType(
    {
        "o200k_base": (MappingProxyType(_O200K_SPECIALS), "<|endoftext|>"),
        # gpt-oss ends an assistant turn with <|return|> (its tokenizer_config eos_token).
        "o200k_harmony": (MappingProxyType(_HARMONY_SPECIALS), "<|return|>"),
    }
)
"""Preset name → (special tokens, EOS text), for use with an o200k_base rank file."""


def _read_ranks(path: str) -> dict[bytes, int]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
        ranks: dict[bytes, int] = {}
        for line in raw.splitlines():
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (OSError, ValueError, binascii.Error) as exc:
        raise ConfigurationError(f"path: cannot read tiktoken ranks from {path!r}: {exc}") from exc
    return ranks


class TiktokenFileTokenizer(Tokenizer):
    """A tiktoken BPE vocabulary read from a local ``base64token rank`` file.

    Args:
        path: the rank file (plain or gzipped).
        pattern: the pre-tokenization regex; defaults to o200k_base's.
        special_tokens: special token text → id, added to (and overriding) the preset's.
        preset: ``"o200k_base"`` or ``"o200k_harmony"`` (gpt-oss) special tokens, or
            ``None`` for only ``special_tokens``.

    Raises:
        AdapterUnavailableError: ``tiktoken`` is not installed.
        ConfigurationError: unknown preset, or the rank file is missing or malformed.

    EOS is the preset's (``<|return|>`` for harmony), else ``<|endoftext|>`` when
    registered. Thread-safe; a pickle holds the arguments and re-reads the file.
    """

    def __init__(
        self,
        *,
        path: str,
        pattern: str = O200K_PATTERN,
        special_tokens: Mapping[str, int] | None = None,
        preset: str | None = None,
    ) -> None:
        if preset is not None and preset not in PRESETS:
            raise ConfigurationError(
                f"preset: expected one of {sorted(PRESETS)} or null, got {preset!r}"
            )
        try:
            import tiktoken
        except ImportError as exc:
            raise AdapterUnavailableError(
                "tokenizer.backend 'tiktoken' needs the tiktoken package; install it with "
                "pip install 'crucible-train[tiktoken]', or set tokenizer.backend: byte_level "
                "in containers.yaml"
            ) from exc
        self._args: dict[str, Any] = {
            "path": path,
            "pattern": pattern,
            "special_tokens": None if special_tokens is None else dict(special_tokens),
            "preset": preset,
        }
        preset_specials, eos_text = PRESETS[preset] if preset else ({}, "<|endoftext|>")
        specials = {**preset_specials, **(special_tokens or {})}
        ranks = _read_ranks(path)
        self._encoding = tiktoken.Encoding(
            preset or os.path.basename(path),
            pat_str=pattern,
            mergeable_ranks=ranks,
            special_tokens=specials,
        )
        self._specials = specials
        self._vocab_size = max([*ranks.values(), *specials.values()]) + 1
        self._eos = specials.get(eos_text)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def vocab_size(self) -> int:
        """One past the largest rank or special id."""
        return self._vocab_size

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Special token text → id."""
        return MappingProxyType(self._specials)

    @property
    def eos_token_id(self) -> int | None:
        """The preset's EOS id, else ``<|endoftext|>``'s when registered, else ``None``."""
        return self._eos

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Token ids of ``text`` (tiktoken adds no BOS).

        Raises:
            TokenizerError: ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        if allow_special:
            return list(self._encoding.encode(text, allowed_special="all"))
        return list(self._encoding.encode(text, disallowed_special=()))

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        """Token ids of each text, as :meth:`encode` gives them.

        A plain loop: tiktoken's own ``encode_batch`` spreads the texts over a new thread
        pool per call, which costs more than it saves on the short runs renderers encode.

        Raises:
            TokenizerError: an element is not a string.
        """
        return [self.encode(text, allow_special=allow_special) for text in texts]

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``; bytes that are not valid UTF-8 become U+FFFD.

        Raises:
            TokenizerError: an id is out of range or unassigned (a gap between ranks
                and special tokens).
        """
        ids = list(tokens)
        for token in ids:
            if isinstance(token, bool) or not 0 <= token < self._vocab_size:
                raise TokenizerError(f"token id {token!r} is outside 0..{self._vocab_size - 1}")
        try:
            return str(self._encoding.decode(ids))
        except (KeyError, ValueError) as exc:
            raise TokenizerError(f"cannot decode tokens: {exc}") from exc
