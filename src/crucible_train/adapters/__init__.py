"""Adapters: concrete implementations of the ports, one sub-package per technology.

Adapters import only :mod:`crucible_train.ports`, :mod:`crucible_train.types`,
:mod:`crucible_train.errors`, :mod:`crucible_train.config`, the standard library, numpy
and attrs, plus their own SDK, which they import lazily inside the constructor so that a
missing optional package fails with :class:`~crucible_train.errors.AdapterUnavailableError`
only when it is selected.
Only :mod:`crucible_train.container` imports from here; core code never does.

* ``noop/``: one adapter per port that runs offline with no configuration;
* ``files/``: local filesystem blob store, JSONL dataset store and run-directory
  metrics sink;
* ``console/``: metrics tables on the terminal (``rich``);
* ``requests_http/``: the HTTP client (``requests``);
* ``memory/``: in-process numpy vector store;
* ``huggingface/``: Hugging Face Hub client (needs the ``hub`` extra);
* ``neptune/``: Neptune metrics sink (1.x REST protocol over the HTTP port);
* ``local_torch/``: the local PyTorch engine: training, sampling and model info
  (``torch``, ``transformers``, ``peft``; the ``local`` extra).
"""
