"""Preference pairs of the built-in arithmetic task: the exact answer over a plausible wrong one."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from crucible_train.core.training.preference_data import PreferencePair
from crucible_train.recipes.arithmetic.task import ArithmeticProblem

__all__ = ["arithmetic_pairs", "rejected_answer"]


def rejected_answer(problem: ArithmeticProblem) -> str:
    """A plausible wrong answer, deterministic from the problem (a hash picks the kind).

    One of four kinds: a carry error (the answer without the carry: ``a + b - 10`` when the
    units carry, else ``- 100`` when the tens do; for ``a - b`` a forgotten borrow,
    ``+ 10``), the answer off by ten either way, the last two digits swapped, or a wrong
    sum off by 11..50 (upwards when downwards would go below zero). A kind that does not
    apply (no carry, equal last digits) falls back to off by ten. The first three are
    mistakes an addition model makes while learning, so the pairs are hard negatives for
    the SFT policy; the fourth keeps some easier contrast, without which held-out
    preference accuracy plateaued at ~0.82. Answers of the other operation are not used
    (the default SFT data has addition only) and off-by-one answers neither (the small
    default model barely separates last digits).
    """
    value = int(problem.answer)
    digest = hashlib.sha256(f"{problem.a}{problem.op}{problem.b}:rejected".encode()).digest()
    kind = digest[0] % 4
    sign = 1 if digest[1] % 2 == 0 else -1
    if kind == 3:
        offset = 11 + digest[2] % 40
        return str(value + offset if value - offset < 0 else value + sign * offset)
    a, b = abs(problem.a), abs(problem.b)
    if kind == 0:
        if problem.op == "+":
            if a % 10 + b % 10 >= 10:
                return str(value - 10)
            if a // 10 % 10 + b // 10 % 10 >= 10:
                return str(value - 100)
        elif a % 10 < b % 10:
            return str(value + 10)
    text = str(abs(value))
    if kind == 2 and len(text) >= 2 and text[-1] != text[-2]:
        swapped = int(text[:-2] + text[-1] + text[-2])
        return str(-swapped if value < 0 else swapped)
    return str(value + sign * 10)


def arithmetic_pairs(problems: Sequence[ArithmeticProblem]) -> list[PreferencePair]:
    """Preference pairs of arithmetic problems: the exact answer over :func:`rejected_answer`."""
    return [
        PreferencePair(
            prompt=tuple(p.prompt()),
            chosen=({"role": "assistant", "content": p.answer},),
            rejected=({"role": "assistant", "content": rejected_answer(p)},),
        )
        for p in problems
    ]
