"""Deprecated alias of :mod:`crucible_train.entrypoints.logger_facade` (the seed API path).

``from crucible_train.logging import create_logger`` keeps working and gives the very
same objects; new code imports from :mod:`crucible_train.entrypoints.logger_facade`,
whose name does not shadow the standard library's :mod:`logging`.
"""

from __future__ import annotations

import warnings

from crucible_train.entrypoints.logger_facade import KINDS, create_logger, dump_config

__all__ = ["KINDS", "create_logger", "dump_config"]

warnings.warn(
    "crucible_train.logging is deprecated; import create_logger and dump_config from "
    "crucible_train.entrypoints.logger_facade instead",
    DeprecationWarning,
    stacklevel=2,
)
