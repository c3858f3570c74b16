"""Composition root: ``containers.yaml`` → validated settings → dependency-injector container.

Container layer, the only package that imports adapters. Its modules:

* :mod:`~crucible_train.container.wiring` - the wiring diagram, :class:`AppContainer`:
  one typed ``Selector`` per port, one named provider per backend reading its own
  settings block; :data:`BACKENDS` is derived from it;
* :mod:`~crucible_train.container.backends` - the helper that makes one backend's
  provider from its adapter, settings class, config block and injected providers;
* :mod:`~crucible_train.container.yaml_loading` - strict YAML, layering, overrides and
  ``${VAR}`` interpolation (never textual);
* :mod:`~crucible_train.container.validation` - every problem at once, with its key and
  the valid choices; missing secrets named by their variable;
* :mod:`~crucible_train.container.loading` - :func:`load_config` and
  :func:`build_container`;
* :mod:`~crucible_train.container.describe` - key descriptions from the settings classes
  (``config show`` comments);
* :mod:`~crucible_train.container.train_recipes` - the recipes of ``crucible-train train``.
"""

from __future__ import annotations

from crucible_train.container.backends import INJECTED_ARGUMENTS, Backend, backend
from crucible_train.container.loading import build_container, load_config
from crucible_train.container.resolved import ResolvedConfig
from crucible_train.container.settings import MetricsSettings
from crucible_train.container.train_recipes import TRAIN_KEY, TRAIN_RECIPES, Recipe
from crucible_train.container.wiring import (
    BACKENDS,
    EXPORTABLE_BACKENDS,
    AppContainer,
    ExportResult,
    SpoolResult,
    backends_of,
    container_from_config,
    export_checkpoint,
    find_spools,
    injected_arguments,
    results_store,
    run_store,
    sync_metrics_spools,
)
from crucible_train.container.yaml_loading import PACKAGED_CONFIG

__all__ = [
    "BACKENDS",
    "EXPORTABLE_BACKENDS",
    "INJECTED_ARGUMENTS",
    "PACKAGED_CONFIG",
    "TRAIN_KEY",
    "TRAIN_RECIPES",
    "AppContainer",
    "Backend",
    "ExportResult",
    "MetricsSettings",
    "Recipe",
    "ResolvedConfig",
    "SpoolResult",
    "backend",
    "backends_of",
    "build_container",
    "container_from_config",
    "export_checkpoint",
    "find_spools",
    "injected_arguments",
    "load_config",
    "results_store",
    "run_store",
    "sync_metrics_spools",
]
