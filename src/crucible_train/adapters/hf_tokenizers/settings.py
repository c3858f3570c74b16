"""Settings of the Hugging Face ``tokenizers`` backend (adapter layer)."""

from __future__ import annotations

import attrs

from crucible_train.config import not_blank, path_field

__all__ = ["HuggingFaceTokenizerSettings"]


@attrs.frozen(kw_only=True)
class HuggingFaceTokenizerSettings:
    """``tokenizer.huggingface``: a local ``tokenizer.json`` via the ``tokenizers`` library.

    Args:
        path: a ``tokenizer.json`` file, or a directory holding it (and
            ``tokenizer_config.json``).
    """

    path: str = path_field(validator=not_blank)
