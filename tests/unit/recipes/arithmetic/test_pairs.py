"""The built-in arithmetic preference pairs: plausible wrong answers, deterministic."""

from __future__ import annotations

from crucible_train.recipes.arithmetic.pairs import arithmetic_pairs, rejected_answer
from crucible_train.recipes.arithmetic.task import ArithmeticTask


def test_arithmetic_rejected_answers_are_wrong_plausible_and_deterministic() -> None:
    problems = ArithmeticTask(max_operand=99).problems("train", limit=500)
    answers = [rejected_answer(p) for p in problems]
    assert answers == [rejected_answer(p) for p in problems]
    for problem, wrong in zip(problems, answers, strict=True):
        assert wrong != problem.answer
        int(wrong)  # a number
    gaps = [abs(int(w) - int(p.answer)) for p, w in zip(problems, answers, strict=True)]
    assert 10 in gaps  # carry errors / off by ten
    assert any(11 <= gap <= 50 for gap in gaps)  # the "wrong sum" kind
    swapped = [
        w for p, w in zip(problems, answers, strict=True) if w == p.answer[:-2] + p.answer[:-3:-1]
    ]
    assert swapped  # digit swaps
    far = [
        int(w) for p, w in zip(problems, answers, strict=True) if abs(int(w) - int(p.answer)) > 10
    ]
    assert all(w >= 0 for w in far)  # a wrong sum is never pushed below zero


def test_pairs_put_the_exact_answer_over_the_rejected_one() -> None:
    problems = ArithmeticTask(max_operand=20).problems("train", limit=4)
    pairs = arithmetic_pairs(problems)
    assert [pair.prompt for pair in pairs] == [tuple(p.prompt()) for p in problems]
    assert [pair.chosen for pair in pairs] == [
        ({"role": "assistant", "content": p.answer},) for p in problems
    ]
    assert [pair.rejected for pair in pairs] == [
        ({"role": "assistant", "content": rejected_answer(p)},) for p in problems
    ]
