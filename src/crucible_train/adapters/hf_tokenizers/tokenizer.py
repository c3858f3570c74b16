"""Tokenizer backed by a local ``tokenizer.json`` and the Hugging Face ``tokenizers`` library.

Special-token handling: with ``allow_special=True`` the text of an added token becomes
its id (as ``transformers`` does). With ``allow_special=False`` a second copy of the
tokenizer with ``encode_special_tokens=True`` is used, which runs the text of tokens
flagged *special* through the normal BPE, so user content that contains ``<|im_end|>``
cannot forge a turn boundary. Added tokens that are not flagged special (Qwen3's
``<think>``) are matched either way, exactly as the official tokenizer does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from crucible_train.errors import AdapterUnavailableError, ConfigurationError, TokenizerError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["HuggingFaceTokenizer"]

_FILE = "tokenizer.json"
_CONFIG = "tokenizer_config.json"


def _load(file: str | None = None, *, text: str | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json`` file or its text."""
    try:
        import tokenizers
    except ImportError as exc:
        raise AdapterUnavailableError(
            "tokenizer.backend 'huggingface' needs the tokenizers package; install it with "
            "pip install 'crucible-train[local]', or set tokenizer.backend: byte_level in "
            "containers.yaml"
        ) from exc
    try:
        if text is not None:
            return tokenizers.Tokenizer.from_str(text)
        return tokenizers.Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust loader raises a bare Exception on bad JSON
        raise ConfigurationError(f"path: cannot load {file or 'tokenizer JSON'}: {exc}") from exc


def _eos_text(config_file: str) -> str | None:
    # eos_token is a string in recent configs and {"content": ...} in older ones.
    if not os.path.isfile(config_file):
        return None
    try:
        with open(config_file, encoding="utf-8") as handle:
            value = json.load(handle).get("eos_token")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigurationError(f"path: cannot read {config_file}: {exc}") from exc
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HuggingFaceTokenizer(Tokenizer):
    """A ``tokenizer.json`` vocabulary (Llama 3, Qwen3, DeepSeek V3, ...).

    Args:
        path: a ``tokenizer.json`` file, or a directory containing one. A sibling
            ``tokenizer_config.json`` supplies ``eos_token``.

    Raises:
        AdapterUnavailableError: the ``tokenizers`` package is not installed.
        ConfigurationError: the file is missing or cannot be parsed.

    Thread-safe (the Rust tokenizer is immutable after loading) and picklable: a pickle
    holds only the path and re-loads the file (or, from :meth:`from_json`, the JSON text).
    """

    def __init__(self, *, path: str) -> None:
        file = os.path.join(path, _FILE) if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise ConfigurationError(f"path: no tokenizer.json at {path!r}")
        self._path: str | None = path
        self._json: str | None = None
        eos = _eos_text(os.path.join(os.path.dirname(file), _CONFIG))
        self._setup(_load(file), _load(file), eos)

    @classmethod
    def from_json(cls, text: str, *, eos_token: str | None) -> HuggingFaceTokenizer:
        """A tokenizer from the text of a ``tokenizer.json`` (e.g. a ``transformers``
        fast tokenizer's ``backend_tokenizer.to_str()``) and its EOS token text.

        A pickle of it holds that text. Raises ``ConfigurationError`` for invalid JSON.
        """
        self = cls.__new__(cls)
        self._path = None
        self._json = text
        self._setup(_load(text=text), _load(text=text), eos_token)
        return self

    def _setup(self, tokenizer: Any, literal: Any, eos: str | None) -> None:
        self._tokenizer = tokenizer
        # A separate instance because encode_special_tokens is mutable state on the
        # tokenizer; toggling it per call would race between threads.
        self._literal = literal
        self._literal.encode_special_tokens = True
        added = self._tokenizer.get_added_tokens_decoder()
        self._special = {tok.content: int(i) for i, tok in added.items() if tok.special}
        self._vocab_size: int = max(
            [int(self._tokenizer.get_vocab_size(with_added_tokens=True)), *(i + 1 for i in added)]
        )
        eos_id = None if eos is None else self._tokenizer.token_to_id(eos)
        self._eos: int | None = None if eos_id is None else int(eos_id)
        self._eos_text = eos

    def __getstate__(self) -> dict[str, str | None]:
        if self._path is not None:
            return {"path": self._path}
        return {"json": self._json, "eos_token": self._eos_text}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "path" in state:
            self.__init__(path=state["path"])  # type: ignore[misc]
            return
        self._path = None
        self._json = state["json"]
        self._setup(_load(text=state["json"]), _load(text=state["json"]), state["eos_token"])

    @property
    def vocab_size(self) -> int:
        """Base vocabulary plus added tokens (one past the largest id)."""
        return self._vocab_size

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Added tokens flagged ``special`` in ``tokenizer.json``: text → id."""
        return MappingProxyType(self._special)

    @property
    def eos_token_id(self) -> int | None:
        """Id of ``eos_token`` from ``tokenizer_config.json``, or ``None`` without one."""
        return self._eos

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Token ids of ``text`` without BOS/EOS (``add_special_tokens=False``).

        Raises:
            TokenizerError: ``text`` is not a string or the tokenizer rejects it.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        tokenizer = self._tokenizer if allow_special else self._literal
        try:
            return list(tokenizer.encode(text, add_special_tokens=False).ids)
        except Exception as exc:  # tokenizers raises bare Exceptions from Rust
            raise TokenizerError(f"cannot encode text: {exc}") from exc

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        """Token ids of each text, as :meth:`encode` gives them, in one Rust call.

        The Rust tokenizer encodes the batch on all cores (rayon) with the GIL released;
        ``encode_batch_fast`` (tokenizers >= 0.20) also skips computing character offsets,
        which only the ids we return make unnecessary.

        Raises:
            TokenizerError: an element is not a string or the tokenizer rejects it.
        """
        batch = list(texts)
        for index, text in enumerate(batch):
            if not isinstance(text, str):
                raise TokenizerError(
                    f"encode_batch expects strs, got {type(text).__name__} at index {index}"
                )
        if not batch:
            return []
        tokenizer = self._tokenizer if allow_special else self._literal
        encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
        try:
            return [list(encoding.ids) for encoding in encode(batch, add_special_tokens=False)]
        except Exception as exc:  # tokenizers raises bare Exceptions from Rust
            raise TokenizerError(f"cannot encode texts: {exc}") from exc

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``, special tokens kept (``skip_special_tokens=False``).

        Raises:
            TokenizerError: an id is outside ``0 .. vocab_size-1``.
        """
        ids = list(tokens)
        for token in ids:
            if isinstance(token, bool) or not 0 <= token < self._vocab_size:
                raise TokenizerError(f"token id {token!r} is outside 0..{self._vocab_size - 1}")
        try:
            return str(self._tokenizer.decode(ids, skip_special_tokens=False))
        except Exception as exc:
            raise TokenizerError(f"cannot decode tokens: {exc}") from exc
