"""Delivery option checks (``delivery/options.py``): every problem reported at once."""

from __future__ import annotations

import pytest

from crucible_train.adapters.delivery.options import (
    count_problem,
    is_positive_number,
    positive_problem,
)
from crucible_train.adapters.delivery.sender import ReliableSender
from crucible_train.errors import ConfigurationError

from delivery_fakes import MemoryTransport


def test_options_are_validated(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        ReliableSender(
            transport=MemoryTransport(),
            spool_dir=tmp_path,
            rate_per_s=0,
            burst=0,
            heartbeat_s=-1,
            max_rows_per_request=0,
        )
    assert len(info.value.problems) == 4
    assert list(info.value.problems) == [
        "rate_per_s is 0; use a finite number > 0",
        "heartbeat_s is -1; use a number > 0 or None",
        "burst is 0; use a whole number >= 1",
        "max_rows_per_request is 0; use a whole number >= 1",
    ]


def test_backoff_bounds_must_be_ordered(tmp_path):
    with pytest.raises(ConfigurationError, match=r"max_backoff_s \(1\.0\) is below min_backoff_s"):
        ReliableSender(
            transport=MemoryTransport(),
            spool_dir=tmp_path,
            rate_per_s=1,
            burst=1,
            heartbeat_s=None,
            min_backoff_s=2.0,
            max_backoff_s=1.0,
        )
    assert not (tmp_path / "lock").exists()  # refused before the spool was touched


@pytest.mark.parametrize(
    ("value", "positive"),
    [
        (1, True),
        (0.001, True),
        (0, False),
        (-1.0, False),
        (float("nan"), False),
        (float("inf"), False),
        (True, False),
        ("1", False),
        (None, False),
    ],
)
def test_is_positive_number(value, positive):
    assert is_positive_number(value) is positive
    assert (positive_problem("x", value) is None) is positive


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (10, True), (0, False), (-3, False), (2.0, False), (True, False)]
)
def test_count_problem_wants_a_whole_number_of_at_least_one(value, ok):
    problem = count_problem("burst", value)
    assert (problem is None) is ok
    if not ok:
        assert problem == f"burst is {value!r}; use a whole number >= 1"
