"""Hugging Face adapters (adapter layer, ``huggingface_hub``; needs the ``hub`` extra).

Importing this package does not import ``huggingface_hub``; constructing an adapter does.
"""

from __future__ import annotations

from crucible_train.adapters.huggingface.hub_client import HuggingFaceHubClient

__all__ = ["HuggingFaceHubClient"]
