"""The one place that words "this noop adapter cannot do that" (adapter layer, noop).

Every noop adapter whose port has no meaningful no-op raises the error built here, so the
message always names the ``containers.yaml`` key to change and how to list the valid
backends (the container, not this module, knows which exist).
"""

from __future__ import annotations

from crucible_train.errors import BackendNotConfiguredError

__all__ = ["not_configured"]


def not_configured(port_key: str, operation: str) -> BackendNotConfiguredError:
    """Build the error a noop adapter raises for work it cannot do.

    Args:
        port_key: the ``containers.yaml`` top-level key of the port (``"training"``).
        operation: the port method that was called (``"forward_backward"``).

    Returns:
        A :class:`~crucible_train.errors.BackendNotConfiguredError` to raise.

    Example:
        ``training.backend is 'noop', which cannot run forward_backward; set
        training.backend in containers.yaml (or pass training.backend=NAME) to a real
        backend; `crucible-train config check training.backend=list` lists them``
    """
    key = f"{port_key}.backend"
    return BackendNotConfiguredError(
        f"{key} is 'noop', which cannot run {operation}; set {key} in containers.yaml "
        f"(or pass {key}=NAME) to a real backend; "
        f"`crucible-train config check {key}=list` lists them"
    )
