"""Local PyTorch engine (adapter layer, ``torch`` + ``transformers`` + ``peft``): training,
sampling and model info for a causal LM in this process.

Modules: ``model`` (build, save and load the model), ``losses`` (the built-in losses),
``training_client``, ``sampling_client`` and ``model_info`` (the port adapters), and the
training client's pieces: ``call_worker``, ``batching``, ``custom_loss``, ``adamw`` and
``training_state`` (the ``save_state`` directory format). Nothing here imports torch at
import time; a missing package fails when an adapter is built, with
:class:`~crucible_train.errors.AdapterUnavailableError`.
"""

from __future__ import annotations
