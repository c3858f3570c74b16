"""Tinker tokenizer (adapter layer, optional ``tinker`` SDK + ``tokenizers``).

Loads ``base_model``'s tokenizer the way the SDK's ``get_tokenizer()`` does (its helper
maps Tinker model names to Hugging Face tokenizer ids, then calls
``AutoTokenizer.from_pretrained``) and serves it through
:class:`~crucible_train.adapters.hf_tokenizers.tokenizer.HuggingFaceTokenizer`, so the
special-token rules of the ``huggingface`` backend apply unchanged. No Tinker server is
contacted. A local model directory as ``base_model`` (a self-hosted server) works
offline; hosted model names are downloaded from the Hugging Face Hub.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.adapters.tinker._base import TinkerAdapter
from crucible_train.adapters.tinker._sdk import import_tinker
from crucible_train.errors import CrucibleError, TokenizerError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = ["TinkerTokenizer"]


def _load_hf_tokenizer(base_model: str) -> Any:
    """The ``transformers`` tokenizer the SDK's ``get_tokenizer()`` would return."""
    try:
        module = importlib.import_module("tinker.lib.public_interfaces.sampling_client")
        load = getattr(module, "_load_tokenizer_from_model_info", None)
        if load is not None:
            return load(base_model)
        # An SDK without the helper: its get_tokenizer() is AutoTokenizer on the name.
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(base_model)
    except Exception as exc:
        raise TokenizerError(
            f"cannot load the tokenizer of base_model {base_model!r} through the tinker SDK "
            f"({type(exc).__name__}: {exc}); hosted model names are downloaded from the "
            "Hugging Face Hub, so this needs network access. Offline, set "
            "tokenizer.backend: huggingface with tokenizer.huggingface.path pointing to a "
            "local directory that holds the model's tokenizer.json"
        ) from exc


class TinkerTokenizer(TinkerAdapter, Tokenizer):
    """The tokenizer of a Tinker ``base_model``. Thread-safe; picklable (as its vocabulary)."""

    def _start(self) -> None:
        """Load the tokenizer of ``base_model`` now (see the module docstring).

        The settings are the fields of :class:`~.settings.TinkerSettings`
        (``tokenizer.tinker``); only ``base_model`` is used, the others are accepted so
        the four Tinker ports share one settings block.

        Raises:
            AdapterUnavailableError: the ``tinker`` SDK or ``tokenizers`` is missing.
            TokenizerError: the tokenizer cannot be loaded (hub unreachable, unknown
                name, not a fast tokenizer); the message suggests the offline backend.
        """
        settings = self._settings
        import_tinker("tokenizer")
        base_model = str(settings.base_model)
        self._base_model = base_model
        hf = _load_hf_tokenizer(base_model)
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise TokenizerError(
                f"the tokenizer of {base_model!r} is not a fast (tokenizer.json) tokenizer; "
                "use tokenizer.backend: huggingface or tiktoken with a local vocabulary"
            )
        try:
            self._inner = HuggingFaceTokenizer.from_json(
                backend.to_str(), eos_token=getattr(hf, "eos_token", None)
            )
        except CrucibleError as exc:
            raise TokenizerError(f"cannot use the tokenizer of {base_model!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"TinkerTokenizer(base_model={self._base_model!r})"

    def __getstate__(self) -> dict[str, Any]:
        # The vocabulary itself, so workers need neither the SDK nor the hub.
        return {"base_model": self._base_model, "inner": self._inner}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._base_model = state["base_model"]
        self._inner = state["inner"]

    @property
    def vocab_size(self) -> int:
        """Base vocabulary plus added tokens (one past the largest id)."""
        return self._inner.vocab_size

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Added tokens flagged ``special``: text → id."""
        return self._inner.special_tokens

    @property
    def eos_token_id(self) -> int | None:
        """Id of the tokenizer's ``eos_token``, or ``None`` without one."""
        return self._inner.eos_token_id

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Token ids of ``text`` without BOS/EOS (see the ``huggingface`` backend)."""
        return self._inner.encode(text, allow_special=allow_special)

    def encode_batch(self, texts: Sequence[str], *, allow_special: bool = True) -> list[list[int]]:
        """Token ids of each text, as :meth:`encode` gives them."""
        return self._inner.encode_batch(texts, allow_special=allow_special)

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``, special tokens kept."""
        return self._inner.decode(tokens)
