"""Settings of the byte-level tokenizer backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import greater_than

__all__ = ["EMBEDDED_SPECIAL_TOKENS", "EMBEDDED_VOCAB_SIZE", "ByteLevelTokenizerSettings"]

EMBEDDED_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|pad|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)
"""The special tokens of the embedded default profile: those the qwen3 renderers emit."""

EMBEDDED_VOCAB_SIZE = 512
"""The embedded profile's vocabulary size: the vocabulary of the default local_torch model."""


@attrs.frozen(kw_only=True)
class ByteLevelTokenizerSettings:
    """``tokenizer.byte_level``: UTF-8 bytes (ids 0-255) plus special tokens from 256.

    The defaults are the embedded profile (the qwen3 renderers' tokens, padded to the
    default local_torch model's vocabulary); the adapter's own constructor defaults are
    the bare four-token vocabulary.

    Args:
        special_tokens: special token texts, ids 256, 257, ... in this order (the qwen3
            renderers' tokens).
        vocab_size: pad to this size (512: the local_torch default); null: 256 + specials.
    """

    special_tokens: list[str] = attrs.field(factory=lambda: list(EMBEDDED_SPECIAL_TOKENS))
    vocab_size: int | None = attrs.field(default=EMBEDDED_VOCAB_SIZE, validator=greater_than(0))
