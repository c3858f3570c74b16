"""The built-in arithmetic task: deterministic Q&A chats small enough to learn on a CPU.

Problems are ``a + b`` and ``a - b`` with operands in ``[0, max_operand]``. Every problem
belongs to exactly one split, decided by a hash of the problem (not by sampling order), so
the test set never overlaps the training set whatever sizes are asked for.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from crucible_train.core.datasets import PromptRow
from crucible_train.errors import ConfigurationError

__all__ = [
    "ARITHMETIC",
    "DEFAULT_MAX_OPERAND",
    "ArithmeticProblem",
    "ArithmeticTask",
    "arithmetic_rows",
    "normalize_answer",
]

ARITHMETIC = "arithmetic"
"""The ``dataset`` value of ``train.sft`` / ``train.dpo`` naming this built-in task."""

DEFAULT_MAX_OPERAND = 99
"""Operands range over ``0 .. 99`` unless a recipe's ``max_operand`` says otherwise."""

Split = Literal["train", "test"]


@attrs.frozen(kw_only=True)
class ArithmeticProblem:
    """One problem: ``question`` (the user turn) and its exact ``answer``."""

    a: int
    b: int
    op: str

    @property
    def question(self) -> str:
        """The user message."""
        return f"What is {self.a} {self.op} {self.b}?"

    @property
    def answer(self) -> str:
        """The expected assistant message."""
        value = self.a + self.b if self.op == "+" else self.a - self.b
        return str(value)

    def messages(self) -> list[dict[str, Any]]:
        """The supervised conversation: question and answer."""
        return [
            {"role": "user", "content": self.question},
            {"role": "assistant", "content": self.answer},
        ]

    def prompt(self) -> list[dict[str, Any]]:
        """The conversation to sample an answer for."""
        return [{"role": "user", "content": self.question}]


def normalize_answer(text: str) -> str:
    """The answer as compared for exact match (surrounding whitespace removed)."""
    return text.strip()


@attrs.frozen(kw_only=True)
class ArithmeticTask:
    """All problems of the task and their deterministic train/test split.

    Args:
        max_operand: operands range over ``0 .. max_operand``.
        operations: ``"+"`` and/or ``"-"``. Addition only by default: the ~1M-parameter
            default model reaches 0.97 held-out accuracy on it in ~420 steps, while with
            subtraction (negative answers) it was still at 0.2 after 600 steps.
        test_fraction: share of all problems held out for testing.
        seed: orders the problems within each split.
    """

    max_operand: int = DEFAULT_MAX_OPERAND
    operations: tuple[str, ...] = ("+",)
    test_fraction: float = 0.1
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.max_operand < 1:
            raise ConfigurationError(f"max_operand must be >= 1, got {self.max_operand}")
        bad = [op for op in self.operations if op not in ("+", "-")]
        if bad or not self.operations:
            raise ConfigurationError(
                f"operations must be a non-empty subset of ['+', '-'], got {list(self.operations)}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigurationError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    def _split_of(self, problem: ArithmeticProblem) -> Split:
        digest = hashlib.sha256(f"{problem.a}{problem.op}{problem.b}".encode()).digest()
        return "test" if int.from_bytes(digest[:4], "big") / 2**32 < self.test_fraction else "train"

    def problems(self, split: Split, limit: int | None = None) -> list[ArithmeticProblem]:
        """The problems of ``split`` in a seeded order, at most ``limit`` of them."""
        everything = [
            ArithmeticProblem(a=a, b=b, op=op)
            for op in self.operations
            for a in range(self.max_operand + 1)
            for b in range(self.max_operand + 1)
        ]
        chosen = [p for p in everything if self._split_of(p) == split]
        random.Random(f"{self.seed}:{split}").shuffle(chosen)
        return chosen if limit is None else chosen[:limit]

    @staticmethod
    def is_correct(problem: ArithmeticProblem, response: str) -> bool:
        """Exact match of the (stripped) response with the answer."""
        return normalize_answer(response) == problem.answer

    @staticmethod
    def conversations(problems: Sequence[ArithmeticProblem]) -> list[list[dict[str, Any]]]:
        """Supervised conversations of ``problems``."""
        return [p.messages() for p in problems]


def arithmetic_rows(problems: Sequence[ArithmeticProblem]) -> list[PromptRow]:
    """One prompt row per problem: the question, and its exact answer as ``answer``."""
    return [
        PromptRow(prompt=tuple(p.prompt()), answer=p.answer, extras={"answer": p.answer})
        for p in problems
    ]
