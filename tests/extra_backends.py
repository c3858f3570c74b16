"""Test-only backends in the wiring diagram, for one test at a time.

The container's backends are the providers of :class:`AppContainer`'s selectors, so a
test that needs a counting or recording backend adds a provider there (and the
validation, ``BACKENDS`` and ``logs sync`` see it, as they would a real one) and takes it
away afterwards. Containers built meanwhile copy it, like every other provider.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dependency_injector import providers

from crucible_train.adapters.noop.settings import NoopSettings
from crucible_train.container import AppContainer, backend


def _selector(port: str) -> Any:
    return AppContainer.metrics_sink if port == "metrics" else getattr(AppContainer, port)


def branch(
    port: str, name: str, adapter: Any, settings: type = NoopSettings, **injected: Any
) -> providers.Provider[Any]:
    """The provider a line ``name=backend(adapter, settings, config.<port>.<name>)`` makes."""
    return backend(adapter, settings, AppContainer.config[port][name], **injected)


@contextlib.contextmanager
def extra_backends(port: str, **branches: providers.Provider[Any]) -> Iterator[None]:
    """Add (or replace) backends of ``port`` in the diagram while the block runs."""
    selector = _selector(port)
    before = dict(selector.providers)
    selector.set_providers(**{**before, **branches})
    try:
        yield
    finally:
        selector.set_providers(**before)
