"""Backend providers: how one line of the wiring diagram builds one adapter.

Container layer; imports no adapter. :func:`backend` turns "adapter class + settings class
+ config block + injected providers" into a :class:`BackendProvider`, a ``Singleton``
that remembers its settings class and what the diagram injects into it.
:func:`describe_branches` reads a selector's branches back into :class:`Backend` records,
so that validation, ``logs sync``, the configuration reference and the tests derive the
backends of every port from the one diagram in :mod:`crucible_train.container.wiring`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import attrs
from dependency_injector import providers

from crucible_train.config import field_specs

__all__ = [
    "HTTP",
    "INJECTED_ARGUMENTS",
    "RUN_DIR",
    "Backend",
    "BackendProvider",
    "backend",
    "describe_branches",
]

T = TypeVar("T")

HTTP = "http"
"""Injected argument: the ``http`` port's adapter, for adapters that talk HTTP."""

RUN_DIR = "run_dir"
"""Injected argument: ``metrics.run_dir``, for metrics sinks that write or spool there."""

INJECTED_ARGUMENTS = (HTTP, RUN_DIR)
"""Constructor arguments the diagram may inject besides settings: never settings keys."""


class BackendProvider(providers.Singleton[T]):
    """A ``Singleton`` building one backend's adapter from its own settings block.

    Its keyword arguments are the settings class's fields, each read from the backend's
    ``config.<port>.<backend>`` block, plus the providers the diagram injects (see
    :data:`INJECTED_ARGUMENTS`). Build it with :func:`backend`.

    Attributes:
        settings: the settings class validating the block.
        injected: names of the injected keyword arguments, in diagram order.
    """

    settings: type
    injected: tuple[str, ...]

    def __deepcopy__(self, memo: dict[Any, Any] | None) -> BackendProvider[T]:
        # Containers copy their providers per instance; keep what the diagram said.
        copied = cast(BackendProvider[T], super().__deepcopy__(memo))
        copied.settings = self.settings
        copied.injected = self.injected
        return copied


def backend(
    adapter: Callable[..., T],
    settings: type,
    block: providers.ConfigurationOption,
    **injected: providers.Provider[Any],
) -> BackendProvider[T]:
    """One backend of a port: ``adapter(**settings fields from block, **injected)``, built once.

    Args:
        adapter: the adapter class.
        settings: its settings class (beside the adapter); its fields are the keys of
            ``block`` and keyword arguments of ``adapter``.
        block: the backend's configuration block, ``config.<port>.<backend>``.
        **injected: providers the adapter receives too, by name (``http=http``,
            ``run_dir=config.metrics.run_dir``); see :data:`INJECTED_ARGUMENTS`.

    Returns:
        The provider; nothing is built until it is called.

    Raises:
        TypeError: an injected name is not in :data:`INJECTED_ARGUMENTS` or is also a
            settings field (a mistake in the diagram).
    """
    fields = list(field_specs(settings))
    wrong = [name for name in injected if name not in INJECTED_ARGUMENTS or name in fields]
    if wrong:
        raise TypeError(
            f"{getattr(adapter, '__name__', adapter)}: cannot inject {wrong}; injected "
            f"arguments are {list(INJECTED_ARGUMENTS)} and never settings fields"
        )
    provider = BackendProvider[T](adapter, **{name: block[name] for name in fields}, **injected)
    provider.settings = settings
    provider.injected = tuple(injected)
    return provider


@attrs.frozen(kw_only=True)
class Backend:
    """What the wiring diagram says about one backend of a port.

    Attributes:
        adapter: the adapter class.
        settings: its settings class (the schema of its ``containers.yaml`` sub-block).
        injected: the arguments the container injects besides the settings
            (``http``, ``run_dir``).
    """

    adapter: type
    settings: type
    injected: tuple[str, ...] = ()

    @property
    def talks_http(self) -> bool:
        """Whether the adapter is given the ``http`` port's client."""
        return HTTP in self.injected


def describe_branches(branches: Mapping[str, providers.Provider[Any]]) -> dict[str, Backend]:
    """Backend name → :class:`Backend` for the branches of a selector (or aggregate).

    Raises:
        TypeError: a branch is not a :class:`BackendProvider` (every backend of the
            diagram is built with :func:`backend`).
    """
    described: dict[str, Backend] = {}
    for name, provider in branches.items():
        if not isinstance(provider, BackendProvider):
            raise TypeError(f"backend {name!r} is not built with container.backend(...)")
        described[name] = Backend(
            adapter=cast(type, provider.provides),
            settings=provider.settings,
            injected=provider.injected,
        )
    return described
