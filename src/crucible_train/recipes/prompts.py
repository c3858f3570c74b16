"""What the recipes share to run on prompt-only rows: loading them, the run's reward, and
the greedy held-out reward evaluation (``test/reward``).

Used by ``train rl`` (its training prompts and ``test_dataset``) and ``train sft`` (a
``test_dataset`` of prompt-only rows scored with ``test_reward``).
"""

from __future__ import annotations

from crucible_train.core.datasets import ColumnNames, PromptRow, iter_rows
from crucible_train.core.evaluation.reward_evaluator import RewardEvaluator
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.rewards import CombinedReward, build_rewards
from crucible_train.core.training.job import JobContext
from crucible_train.core.training.rewarding import RewardSpecs
from crucible_train.ports.dataset_store import DatasetStore

__all__ = ["build_job_reward", "is_prompt_dataset", "load_prompt_rows", "reward_test_evaluator"]

DEFAULT_COLUMNS = ColumnNames()
"""``prompt`` and ``answer``."""


def load_prompt_rows(
    store: DatasetStore, source: str, names: ColumnNames = DEFAULT_COLUMNS
) -> list[PromptRow]:
    """Every prompt-only row of ``source`` (see :func:`crucible_train.core.datasets.iter_rows`).

    Raises:
        InvalidDataError: a row lacks the prompt or answer column (file, row, its
            columns) or is malformed; the dataset is empty.
    """
    rows = []
    for row in iter_rows(store, source, kind="prompt", names=names):
        assert isinstance(row, PromptRow)  # kind="prompt" gives prompt rows only
        rows.append(row)
    return rows


def is_prompt_dataset(
    store: DatasetStore, source: str, names: ColumnNames = DEFAULT_COLUMNS
) -> bool:
    """Whether the first row of ``source`` is a prompt-only row (no completion, no messages).

    Raises:
        InvalidDataError: the first row fits no row format, or the dataset is empty.
    """
    first = next(iter_rows(store, source, None, names))
    return isinstance(first, PromptRow)


def build_job_reward(
    ctx: JobContext, specs: RewardSpecs, max_failure_rate: float = 0.1
) -> CombinedReward:
    """The combined reward of ``specs``, with the context's LLM and embedding clients.

    Raises:
        ConfigurationError: a spec is invalid, or needs a client the context lacks.
    """
    return build_rewards(
        specs, max_failure_rate=max_failure_rate, llm=ctx.llm, embedding=ctx.embedding
    )


def reward_test_evaluator(
    store: DatasetStore,
    source: str,
    *,
    renderer: Renderer,
    reward: CombinedReward,
    max_tokens: int,
    limit: int,
    names: ColumnNames = DEFAULT_COLUMNS,
) -> RewardEvaluator:
    """Greedy answers to the first ``limit`` prompt rows of ``source``, scored by ``reward``
    (``test/reward`` and ``test/<label>``).

    Raises:
        InvalidDataError: a row is malformed or lacks a column; the dataset is empty.
    """
    rows = load_prompt_rows(store, source, names)
    return RewardEvaluator(
        rows=rows[:limit], renderer=renderer, reward=reward, max_tokens=max_tokens
    )
