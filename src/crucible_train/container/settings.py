"""The ``metrics`` block's own settings (container layer): wiring, not any one sink's."""

from __future__ import annotations

import attrs

from crucible_train.config import not_blank, path_field

__all__ = ["MetricsSettings"]


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """The ``metrics`` block's own keys (besides ``sinks`` and the per-sink sub-blocks).

    Args:
        run_dir: the run directory; passed as ``run_dir=`` to every sink the diagram
            injects it into (files writes there, W&B and Neptune spool there).
    """

    run_dir: str = path_field(default="runs/default", validator=not_blank)
