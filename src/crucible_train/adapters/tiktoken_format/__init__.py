"""tiktoken-format rank-file tokenizer (adapter layer; needs the ``tiktoken`` extra).

Importing this package does not import ``tiktoken``; constructing the adapter does.
"""

from __future__ import annotations

from crucible_train.adapters.tiktoken_format.tokenizer import (
    O200K_PATTERN,
    PRESETS,
    TiktokenFileTokenizer,
)

__all__ = ["O200K_PATTERN", "PRESETS", "TiktokenFileTokenizer"]
