"""Hugging Face ``tokenizers`` adapter (adapter layer; needs the ``local`` extra).

Named ``hf_tokenizers`` so it never shadows the ``tokenizers`` library. Importing this
package does not import ``tokenizers``; constructing the adapter does.
"""

from __future__ import annotations

from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer

__all__ = ["HuggingFaceTokenizer"]
