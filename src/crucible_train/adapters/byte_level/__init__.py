"""Byte-level tokenizer (adapter layer, no dependencies): UTF-8 bytes plus special tokens."""

from __future__ import annotations

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer

__all__ = ["ByteLevelTokenizer"]
