"""``python -m crucible_train``: the same as the ``crucible-train`` command."""

from __future__ import annotations

import sys

from crucible_train.entrypoints.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
