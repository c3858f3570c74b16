"""JSON for the spool (``delivery/encoding.py``): plain-JSON copies of config values."""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path

import attrs
import numpy as np

from crucible_train.adapters.delivery.encoding import json_safe


class Colour(enum.Enum):
    RED = "red"


@attrs.frozen
class Opt:
    name: str
    betas: tuple[float, float]


def test_json_safe_converts_common_config_values():
    value = {
        "np": np.float32(0.5),
        "arr": np.arange(3),
        "path": Path("/tmp/x"),
        "opt": Opt(name="adamw", betas=(0.9, 0.99)),
        "colour": Colour.RED,
        "set": {1},
        1: "int key",
        "nan": math.nan,
        "other": object,
    }
    safe = json_safe(value)
    assert safe["np"] == 0.5
    assert safe["arr"] == [0, 1, 2]
    assert safe["path"] == "/tmp/x"
    assert safe["opt"] == {"name": "adamw", "betas": [0.9, 0.99]}
    assert safe["colour"] == "red"
    assert safe["set"] == [1]
    assert safe["1"] == "int key"
    assert math.isnan(safe["nan"])
    assert isinstance(safe["other"], str)
    json.dumps(safe)  # plain JSON types only
