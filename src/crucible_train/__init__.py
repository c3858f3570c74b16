"""crucible-train: LLM post-training infrastructure.

Render chat conversations into the exact tokens each model family expects, run SFT, RL,
DPO and on-policy distillation loops against any training backend, evaluate models, and
log runs to files, the console, Weights & Biases and Neptune.
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__"]
