"""Tests for crucible_train.core.scheduling: values, edge cases, parsing, errors, properties."""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_train.core.scheduling import (
    Warmup,
    compute_schedule_lr_multiplier,
    lr_at,
    parse_schedule,
)
from crucible_train.errors import ConfigurationError

NAMES = ("constant", "linear", "cosine")
MAX_TOTAL = 10**6
MAX_STEP = 2 * 10**6


def m(schedule: Any, step: int, total: int) -> float:
    return compute_schedule_lr_multiplier(schedule, step, total)


# --- exact values of the base schedules -------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "step", "total", "expected"),
    [
        ("constant", 0, 100, 1.0),
        ("constant", 50, 100, 1.0),
        ("constant", 100, 100, 1.0),
        ("linear", 0, 100, 1.0),
        ("linear", 25, 100, 0.75),
        ("linear", 50, 100, 0.5),
        ("linear", 100, 100, 0.0),
        ("cosine", 0, 100, 1.0),
        ("cosine", 50, 100, 0.5),
        ("cosine", 100, 100, 0.0),
        # 0.5 * (1 + cos(pi / 3)) = 0.75 and 0.5 * (1 + cos(2 pi / 3)) = 0.25.
        ("cosine", 1, 3, 0.75),
        ("cosine", 2, 3, 0.25),
        ("linear", 0, 1, 1.0),
        ("linear", 1, 1, 0.0),
    ],
)
def test_base_schedules_at_known_points(schedule, step, total, expected):
    assert m(schedule, step, total) == pytest.approx(expected, abs=1e-12)


def test_cosine_quarter_point_matches_formula():
    assert m("cosine", 25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)), abs=1e-15)
    assert m("cosine", 25, 100) == pytest.approx(0.8535533905932737)


# --- warmup ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.0), (1, 0.1), (5, 0.5), (9, 0.9), (10, 1.0), (60, 0.5), (110, 0.0)],
)
def test_warmup_then_linear(step, expected):
    assert m(Warmup(steps=10, base="linear"), step, 110) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.0), (2, 0.5), (4, 1.0), (54, 0.5), (104, 0.0)],
)
def test_warmup_then_cosine(step, expected):
    assert m(("warmup", 4, "cosine"), step, 104) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("base", NAMES)
def test_warmup_hands_over_to_base_step_zero_at_step_w(base):
    assert m(Warmup(steps=8, base=base), 8, 100) == 1.0
    assert m(Warmup(steps=8, base=base), 7, 100) == pytest.approx(7 / 8)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.0),
        (5, 0.5),
        # The outer warmup hands over to the inner warmup's step 0, which is 0.
        (10, 0.0),
        (15, 0.5),
        (20, 1.0),
        (70, 0.5),
        (120, 0.0),
        (500, 0.0),
    ],
)
def test_nested_warmup(step, expected):
    schedule = ("warmup", 10, ("warmup", 10, "linear"))
    assert m(schedule, step, 120) == pytest.approx(expected, abs=1e-12)


def test_nested_warmup_inner_run_is_all_warmup():
    # Outer leaves 5 steps to the inner warmup of 10: the inner ramp never finishes.
    schedule = Warmup(steps=10, base=Warmup(steps=10, base="cosine"))
    assert m(schedule, 12, 15) == pytest.approx(0.2)
    assert m(schedule, 15, 15) == pytest.approx(0.5)
    assert m(schedule, 10**6, 15) == pytest.approx(0.5)


def test_three_level_nesting_evaluates_each_level_in_turn():
    schedule = Warmup(steps=2, base=Warmup(steps=4, base=Warmup(steps=0, base="linear")))
    assert m(schedule, 1, 16) == pytest.approx(0.5)
    assert m(schedule, 4, 16) == pytest.approx(0.5)
    assert m(schedule, 6, 16) == 1.0
    assert m(schedule, 11, 16) == pytest.approx(0.5)
    assert m(schedule, 16, 16) == 0.0


# --- documented edge cases -------------------------------------------------------------


@pytest.mark.parametrize("step", [100, 101, 150, 200, 10**9])
def test_past_the_end_linear_and_cosine_stay_at_zero(step):
    assert m("linear", step, 100) == 0.0
    # Unclamped, cosine would rise again (step 200 of 100 would give 1).
    assert m("cosine", step, 100) == 0.0
    assert m("constant", step, 100) == 1.0


def test_past_the_end_with_warmup_stays_at_final_value():
    assert m(("warmup", 10, "cosine"), 1000, 100) == 0.0
    assert m(("warmup", 10, "constant"), 1000, 100) == 1.0


@pytest.mark.parametrize(
    ("step", "total", "warmup", "expected"),
    [
        (0, 10, 10, 0.0),
        (5, 10, 10, 0.5),
        (10, 10, 10, 1.0),  # total == W: the original divided by zero here
        (11, 10, 10, 1.0),
        (3, 5, 10, 0.3),
        (5, 5, 10, 0.5),
        (9, 5, 10, 0.5),  # clamped to the end of the run, does not keep ramping
        (50, 5, 10, 0.5),
        (1, 1, 1, 1.0),
    ],
)
@pytest.mark.parametrize("base", NAMES)
def test_total_at_most_warmup_is_all_warmup(step, total, warmup, expected, base):
    assert m(Warmup(steps=warmup, base=base), step, total) == pytest.approx(expected)


@pytest.mark.parametrize("base", NAMES)
@pytest.mark.parametrize(("step", "total"), [(0, 100), (37, 100), (100, 100), (250, 100)])
def test_zero_warmup_is_the_base_schedule(base, step, total):
    assert m(Warmup(steps=0, base=base), step, total) == m(base, step, total)
    assert m(["warmup", 0, base], step, total) == m(base, step, total)


def test_zero_warmup_at_step_zero_is_not_zero():
    assert m(("warmup", 0, "linear"), 0, 10) == 1.0


# --- lr_at -----------------------------------------------------------------------------


def test_lr_at_scales_the_multiplier():
    assert lr_at(3e-4, "linear", 25, 100) == pytest.approx(2.25e-4)
    assert lr_at(1e-3, ("warmup", 10, "cosine"), 5, 110) == pytest.approx(5e-4)
    assert lr_at(2, "constant", 7, 10) == 2.0
    assert lr_at(0.0, "constant", 7, 10) == 0.0


@pytest.mark.parametrize("base_lr", [-1e-3, math.inf, -math.inf, math.nan, True, "0.1", None])
def test_lr_at_rejects_bad_base_lr(base_lr):
    with pytest.raises(
        ConfigurationError, match=r"base learning rate must be a finite number >= 0"
    ):
        lr_at(base_lr, "constant", 0, 10)


def test_lr_at_validates_schedule_arguments():
    with pytest.raises(ConfigurationError, match="total_steps"):
        lr_at(1e-3, "linear", 0, 0)


# --- parse_schedule --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_parse_names(name):
    assert parse_schedule(name) == name


@pytest.mark.parametrize(
    "raw",
    [
        ("warmup", 5, "cosine"),
        ["warmup", 5, "cosine"],
        {"warmup": 5, "base": "cosine"},
        Warmup(steps=5, base="cosine"),
        ("warmup", np.int64(5), "cosine"),
    ],
)
def test_parse_warmup_forms(raw):
    parsed = parse_schedule(raw)
    assert parsed == Warmup(steps=5, base="cosine")
    assert type(parsed.steps) is int


def test_parse_nested_mixed_forms_normalises_every_level():
    raw = ["warmup", 3, {"warmup": 2, "base": ("warmup", 1, "linear")}]
    expected = Warmup(steps=3, base=Warmup(steps=2, base=Warmup(steps=1, base="linear")))
    assert parse_schedule(raw) == expected


def test_warmup_constructor_normalises_base():
    assert Warmup(steps=1, base=["warmup", 2, "cosine"]) == Warmup(
        steps=1, base=Warmup(steps=2, base="cosine")
    )


def test_parse_is_idempotent_on_warmup():
    schedule = Warmup(steps=4, base="linear")
    assert parse_schedule(schedule) is schedule


def test_warmup_is_frozen_and_keyword_only():
    schedule = Warmup(steps=4, base="linear")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        schedule.steps = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Warmup(4, "linear")  # type: ignore[misc]


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cosnie", "Linear", "", "warmup", "exponential"])
def test_unknown_name_lists_valid_names(name):
    with pytest.raises(ConfigurationError, match=r"unknown schedule name") as info:
        m(name, 0, 10)
    for valid in NAMES:
        assert f"'{valid}'" in str(info.value)


@pytest.mark.parametrize("steps", [-1, -100])
def test_negative_warmup_steps(steps):
    with pytest.raises(
        ConfigurationError, match=r"warmup steps must be a whole number >= 0; got -"
    ):
        m(("warmup", steps, "linear"), 0, 10)
    with pytest.raises(ConfigurationError, match=r"warmup steps must be a whole number >= 0"):
        Warmup(steps=steps, base="linear")


@pytest.mark.parametrize("steps", [2.0, 2.5, True, False, "2", None, math.nan])
def test_non_integer_warmup_steps(steps):
    with pytest.raises(ConfigurationError, match=r"warmup steps must be a whole number"):
        parse_schedule(("warmup", steps, "linear"))
    with pytest.raises(ConfigurationError, match=r"whole number .*not a bool or float"):
        Warmup(steps=steps, base="linear")


def test_float_warmup_in_dict_form_is_rejected():
    with pytest.raises(ConfigurationError, match=r"whole number.*got 2\.0 \(float\)"):
        parse_schedule({"warmup": 2.0, "base": "linear"})


@pytest.mark.parametrize("step", [-1, -(10**9)])
def test_negative_step(step):
    with pytest.raises(ConfigurationError, match=r"step must be a whole number >= 0; got -"):
        m("linear", step, 10)


@pytest.mark.parametrize("step", [1.0, 0.5, True, "3", None])
def test_non_integer_step(step):
    with pytest.raises(ConfigurationError, match=r"step must be a whole number >= 0"):
        m("linear", step, 10)


@pytest.mark.parametrize("total", [0, -1, -(10**6)])
def test_total_steps_must_be_positive(total):
    with pytest.raises(ConfigurationError, match=r"total_steps must be a whole number >= 1; got"):
        m("constant", 0, total)


@pytest.mark.parametrize("total", [10.0, True, None])
def test_total_steps_must_be_an_integer(total):
    with pytest.raises(ConfigurationError, match=r"total_steps must be a whole number >= 1"):
        m("constant", 0, total)


@pytest.mark.parametrize(
    "raw",
    [
        ("warmup", 5),
        ("warmup",),
        (),
        ("warmup", 5, "linear", "extra"),
        ("warmpu", 5, "linear"),
        ("linear",),
        [5, "warmup", "linear"],
    ],
)
def test_malformed_warmup_sequence(raw):
    with pytest.raises(
        ConfigurationError, match=r"malformed warmup schedule.*\('warmup', W, base\)"
    ):
        parse_schedule(raw)


@pytest.mark.parametrize(
    "raw",
    [
        {"warmup": 5},
        {"base": "linear"},
        {"warmup": 5, "base": "linear", "extra": 1},
        {"steps": 5, "base": "linear"},
        {},
    ],
)
def test_malformed_warmup_mapping(raw):
    with pytest.raises(ConfigurationError, match=r"malformed warmup schedule.*'warmup' and 'base'"):
        parse_schedule(raw)


@pytest.mark.parametrize("raw", [None, 3, 1.5, b"linear", {"linear"}])
def test_unreadable_schedule_type(raw):
    with pytest.raises(
        ConfigurationError, match=r"cannot read a schedule from .*'constant', 'linear', 'cosine'"
    ):
        parse_schedule(raw)


def test_bad_nested_base_is_reported():
    with pytest.raises(ConfigurationError, match=r"unknown schedule name 'cosin'"):
        m(("warmup", 1, ("warmup", 2, "cosin")), 0, 10)
    with pytest.raises(ConfigurationError, match=r"warmup steps must be a whole number"):
        m(("warmup", 1, {"warmup": -2, "base": "linear"}), 0, 10)


def test_errors_are_value_errors():
    with pytest.raises(ValueError, match="unknown schedule name"):
        m("nope", 0, 10)


# --- properties ------------------------------------------------------------------------


warmup_steps = st.one_of(st.integers(0, 20), st.integers(0, MAX_TOTAL))
totals = st.one_of(st.integers(1, 30), st.integers(1, MAX_TOTAL))
steps = st.one_of(st.integers(0, 40), st.integers(0, MAX_STEP))


@st.composite
def schedules(draw: st.DrawFn) -> tuple[Any, list[int], str]:
    """A schedule with up to 3 warmup levels, in a randomly chosen raw or typed form.

    Returns the schedule, its warmup steps from the outside in, and its base name.
    """
    base = draw(st.sampled_from(NAMES))
    levels = draw(st.lists(warmup_steps, max_size=3))
    schedule: Any = base
    for w in reversed(levels):
        form = draw(st.sampled_from(["typed", "tuple", "list", "dict"]))
        if form == "typed":
            schedule = Warmup(steps=w, base=schedule)
        elif form == "tuple":
            schedule = ("warmup", w, schedule)
        elif form == "list":
            schedule = ["warmup", w, schedule]
        else:
            schedule = {"warmup": w, "base": schedule}
    return schedule, levels, base


@given(schedules(), totals, steps)
def test_multiplier_is_finite_and_in_unit_interval(drawn, total, step):
    schedule, _, _ = drawn
    value = m(schedule, step, total)
    assert isinstance(value, float)
    assert math.isfinite(value)
    assert 0.0 <= value <= 1.0


@given(schedules(), totals, steps)
def test_raw_and_parsed_forms_agree(drawn, total, step):
    schedule, _, _ = drawn
    assert m(schedule, step, total) == m(parse_schedule(schedule), step, total)


@given(schedules(), totals, steps, st.integers(0, MAX_STEP))
def test_past_the_end_holds_the_final_value(drawn, total, step, extra):
    schedule, _, _ = drawn
    assert m(schedule, total + extra, total) == m(schedule, total, total)
    assert m(schedule, max(step, total), total) == m(schedule, total, total)


@given(schedules(), totals, steps, steps)
def test_decaying_schedules_do_not_increase_after_warmup(drawn, total, a, b):
    schedule, levels, base = drawn
    if base == "constant":
        return
    end_of_warmup = sum(levels)
    lo, hi = sorted((end_of_warmup + a, end_of_warmup + b))
    assert m(schedule, hi, total) <= m(schedule, lo, total)


@given(st.sampled_from(NAMES), totals, steps, steps)
def test_plain_decaying_schedules_are_non_increasing(name, total, a, b):
    lo, hi = sorted((a, b))
    if name == "constant":
        assert m(name, lo, total) == m(name, hi, total) == 1.0
    else:
        assert m(name, hi, total) <= m(name, lo, total)


@given(schedules(), totals, st.integers(1, MAX_TOTAL), st.data())
def test_warmup_is_non_decreasing_during_the_ramp(drawn, total, w, data):
    inner, _, _ = drawn
    schedule = Warmup(steps=w, base=inner)
    a = data.draw(st.integers(0, w - 1))
    b = data.draw(st.integers(0, w - 1))
    lo, hi = sorted((a, b))
    assert m(schedule, lo, total) <= m(schedule, hi, total)
    # During the ramp the value is step / W (clamped to the run's end).
    assert m(schedule, hi, total) == pytest.approx(min(hi, total) / w)


@given(st.sampled_from(NAMES), totals, st.integers(1, MAX_TOTAL), st.data())
def test_ramp_into_plain_base_never_drops_at_handover(base, total, w, data):
    schedule = Warmup(steps=w, base=base)
    step = data.draw(st.integers(0, w))
    assert m(schedule, step, total) <= m(schedule, w, total)
    expected_at_w = 1.0 if total > w else min(total, w) / w
    assert m(schedule, w, total) == pytest.approx(expected_at_w)


@given(schedules(), st.integers(0, MAX_TOTAL), st.integers(1, MAX_TOTAL), steps)
def test_warmup_after_ramp_is_base_on_remaining_steps(drawn, w, remaining, offset):
    inner, _, _ = drawn
    total = w + remaining
    step = w + offset
    expected = m(inner, min(offset, remaining), remaining)
    assert m(Warmup(steps=w, base=inner), step, total) == expected
