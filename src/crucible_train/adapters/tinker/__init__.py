"""Tinker adapters (adapter layer, optional ``tinker`` SDK): training, sampling, model info
and tokenizer over the Tinker API, hosted or self-hosted (skyrl-tx).

Both SDK generations are supported: 0.16.x (what the self-hosted skyrl-tx 0.3.0 server
speaks) and the current 0.38.x. Modules: ``_sdk`` (lazy import, client construction,
type conversion and the one place SDK exceptions become ours), ``_dispatch`` (ordered
submission and future resolution), ``training_client``, ``sampling_client``,
``model_info`` and ``tokenizer`` (the port adapters). Nothing here imports ``tinker`` at
import time; a missing SDK fails when an adapter is built, with
:class:`~crucible_train.errors.AdapterUnavailableError`.
"""

from __future__ import annotations
