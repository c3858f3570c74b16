"""dump_config: every supported type, redaction by name and by value, cycles, and the
property that the output is always strict JSON and never holds a configured secret."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import math
import pathlib
import string
from collections import OrderedDict
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crucible_train.core.config_dump import (
    CYCLE,
    MAX_REPR,
    REDACTED,
    TOO_DEEP,
    dump_config,
    encode_float,
    is_secret_name,
)

SECRET = "sk-live-Distinct1ve-Value"


class Color(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(enum.IntEnum):
    HIGH = 3


@attrs.frozen
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)


@attrs.define
class Run:
    name: str = "exp"
    optim: Optim = attrs.Factory(Optim)
    api_key: str | None = SECRET
    out: pathlib.Path = pathlib.Path("/runs/exp")


@dataclasses.dataclass
class Data:
    path: str = "data.jsonl"
    accessToken: str = SECRET  # noqa: N815 - camelCase is the point of the test
    weights: list[float] = dataclasses.field(default_factory=lambda: [0.5, math.nan])


class WithToDict:
    def to_dict(self) -> dict[str, Any]:
        return {"kind": "custom", "password": "hunter22"}


class BrokenToDict:
    def to_dict(self) -> dict[str, Any]:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        return "BrokenToDict()"


class Opaque:
    def __repr__(self) -> str:
        return f"Opaque(url='https://x.test/?token={SECRET}')"


def loss_fn(x: float) -> float:
    return x


# --- scalars ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, False, 0, -3, 2**70, 1.5, "text", ""])
def test_json_scalars_are_kept(value):
    assert dump_config(value) == value
    assert type(dump_config(value)) is type(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (0.25, 0.25)],
)
def test_non_finite_floats_become_strings(value, expected):
    assert dump_config(value) == expected
    assert encode_float(value) == expected


def test_enums_become_their_values():
    assert dump_config(Color.RED) == "red"
    assert dump_config(Color.PAIR) == [1, 2]
    assert dump_config(Level.HIGH) == 3
    assert type(dump_config(Level.HIGH)) is int


def test_numpy_scalars_become_python_scalars():
    out = dump_config(
        {
            "f32": np.float32(0.5),
            "f64": np.float64(math.nan),
            "i": np.int64(7),
            "u": np.uint8(255),
            "b": np.bool_(True),
            "s": np.str_("x"),
        }
    )
    assert out == {"f32": 0.5, "f64": "NaN", "i": 7, "u": 255, "b": True, "s": "x"}
    assert type(out["i"]) is int
    assert type(out["b"]) is bool
    assert type(out["f32"]) is float


def test_numpy_arrays_become_lists_in_full():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    arr[0, 0] = np.inf
    assert dump_config(arr) == [["Infinity", 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert dump_config(np.array(3)) == 3
    assert len(dump_config(np.zeros(10_000))) == 10_000


def test_paths_bytes_dates_and_callables():
    assert dump_config(pathlib.PurePosixPath("/a/b")) == "/a/b"
    assert dump_config(b"\x00" * 12) == "<12 bytes>"
    assert dump_config(bytearray(3)) == "<3 bytes>"
    assert dump_config(memoryview(b"abcd")) == "<4 bytes>"
    assert dump_config(datetime.date(2025, 1, 2)) == "2025-01-02"
    assert dump_config(datetime.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05"
    assert dump_config(loss_fn) == f"{__name__}.loss_fn"
    assert dump_config(Optim) == f"{__name__}.Optim"
    assert dump_config(math.sqrt) == "math.sqrt"
    assert dump_config(Optim().__eq__).endswith("Optim.__eq__")
    assert dump_config(functools.partial(loss_fn)) == "functools.partial"


def test_unknown_objects_become_short_reprs():
    assert dump_config(Opaque()) == f"Opaque(url='https://x.test/?token={SECRET}')"
    long = type("Long", (), {"__repr__": lambda self: "L" * 1000})()
    out = dump_config(long)
    assert len(out) == MAX_REPR
    assert out.endswith("...")
    assert dump_config(complex(1, 2)) == "(1+2j)"


def test_to_dict_is_used_and_a_broken_one_falls_back_to_repr():
    assert dump_config(WithToDict()) == {"kind": "custom", "password": REDACTED}
    assert dump_config(BrokenToDict()) == "BrokenToDict()"


# --- structures ---------------------------------------------------------------------------


def test_attrs_and_dataclasses_become_mappings():
    assert dump_config(Run(api_key=None)) == {
        "name": "exp",
        "optim": {"lr": 1e-4, "betas": [0.9, 0.95]},
        "api_key": None,  # an unset secret stays visible as unset
        "out": "/runs/exp",
    }
    assert dump_config(Data()) == {
        "path": "data.jsonl",
        "accessToken": REDACTED,
        "weights": [0.5, "NaN"],
    }
    assert dump_config(Optim) == f"{__name__}.Optim"  # the class, not an instance


def test_mappings_keep_order_and_stringify_keys():
    out = dump_config(OrderedDict([("b", 1), ("a", 2), (3, "x"), (None, 0), ((1, "z"), 5)]))
    assert list(out) == ["b", "a", "3", "null", '[1, "z"]']
    assert dump_config({Color.RED: 1, 1.5: 2, True: 3}) == {"red": 1, "1.5": 2, "true": 3}


def test_sequences_and_sets():
    assert dump_config((1, [2, (3,)])) == [1, [2, [3]]]
    assert dump_config({3, 1, 2}) == [1, 2, 3]
    assert dump_config(frozenset({"b", "a"})) == ["a", "b"]
    mixed = dump_config({1, "a", None})
    assert sorted(map(str, mixed)) == ["1", "None", "a"]
    assert dump_config({1, "a", None}) == mixed  # stable order even when unsortable


def test_cycles_become_markers():
    looped: dict[str, Any] = {"name": "x"}
    looped["self"] = looped
    lst: list[Any] = [1]
    lst.append(lst)
    assert dump_config(looped) == {"name": "x", "self": CYCLE}
    assert dump_config(lst) == [1, CYCLE]


def test_shared_references_are_not_cycles():
    shared = {"lr": 1}
    assert dump_config({"a": shared, "b": shared}) == {"a": {"lr": 1}, "b": {"lr": 1}}


def test_deep_nesting_is_cut():
    deep: list[Any] = []
    node = deep
    for _ in range(500):
        child: list[Any] = []
        node.append(child)
        node = child
    out = json.dumps(dump_config(deep))
    assert TOO_DEEP in out


# --- redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "WANDB_API_KEY",
        "apiKey",
        "APIKey",
        "apikey",
        "key",
        "accessToken",
        "refresh-token",
        "client.secret",
        "db_password",
        "Password",
        "passwordHash",
        "aws:secret:id",
        "private key",
        "credentials",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)
    assert dump_config({name: "value"}) == {name: REDACTED}


@pytest.mark.parametrize(
    "name",
    ["keyboard", "max_tokens", "tokenizer", "num_keys", "monkey", "keys", "tokens", "secretary"],
)
def test_names_that_only_look_secret(name):
    assert not is_secret_name(name)
    assert dump_config({name: "value"}) == {name: "value"}


def test_redaction_by_name_covers_whole_subtrees_at_any_depth():
    out = dump_config({"a": [{"b": {"secret": {"x": 1, "y": [2]}}}], "token": 12345})
    assert out == {"a": [{"b": {"secret": REDACTED}}], "token": REDACTED}


def test_redaction_by_value_everywhere():
    config = {
        "url": f"https://user:{SECRET}@host/path?k={SECRET}",
        f"key_named_{SECRET}": 1,
        "list": [f"x{SECRET}y", pathlib.Path(f"/tmp/{SECRET}")],
        "opaque": Opaque(),
        "run": Run(),
    }
    out = dump_config(config, secrets=[SECRET, ""])
    text = json.dumps(out)
    assert SECRET not in text
    assert out["url"] == "https://user:***@host/path?k=***"
    assert out["list"] == ["x***y", "/tmp/***"]
    assert "key_named_***" in out


def test_longer_secrets_are_replaced_first():
    out = dump_config("abc-abcdef", secrets=["abc", "abcdef"])
    assert out == "***-***"


def test_secret_is_scrubbed_before_a_repr_is_cut():
    tail = "x" * (MAX_REPR - 10)
    obj = type("Obj", (), {"__repr__": lambda self: tail + SECRET + "y" * 50})()
    out = dump_config(obj, secrets=[SECRET])
    assert len(out) == MAX_REPR
    assert tail + REDACTED in out  # cutting first would have left "sk-liv" visible


# --- properties ---------------------------------------------------------------------------

_SECRETS = st.lists(
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=4, max_size=12).map(
        lambda s: "sk" + s
    ),
    min_size=1,
    max_size=3,
)


def _leaves(secrets: list[str]) -> st.SearchStrategy[Any]:
    secret_text = st.builds(
        lambda pre, s, post: pre + s + post,
        st.text(max_size=5),
        st.sampled_from(secrets),
        st.text(max_size=5),
    )
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
        secret_text,
        st.binary(max_size=5),
        st.sampled_from([Color.RED, Level.HIGH, loss_fn, Optim()]),
        secret_text.map(pathlib.PurePosixPath),
        st.floats(width=32).map(np.float32),
        st.integers(-(2**31), 2**31).map(np.int64),
        st.builds(Opaque),
    )


@st.composite
def _configs(draw: st.DrawFn) -> tuple[Any, list[str]]:
    secrets = draw(_SECRETS)
    keys = st.one_of(st.text(max_size=8), st.sampled_from(secrets), st.integers())
    tree = draw(
        st.recursive(
            _leaves(secrets),
            lambda children: st.one_of(
                st.lists(children, max_size=4),
                st.lists(children, max_size=3).map(tuple),
                st.dictionaries(keys, children, max_size=4),
            ),
            max_leaves=25,
        )
    )
    return tree, secrets


@settings(max_examples=300, deadline=None)
@given(_configs())
def test_output_is_strict_json_and_never_contains_a_secret(case):
    tree, secrets = case
    out = dump_config(tree, secrets=secrets)
    text = json.dumps(out, allow_nan=False)
    for secret in secrets:
        assert secret not in text
    assert dump_config(tree, secrets=secrets) == out  # deterministic
