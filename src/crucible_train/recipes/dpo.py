"""``crucible-train train dpo``: DPO on arithmetic preference pairs or a dataset of pairs.

The recipe builds the training and held-out pairs of :class:`DpoConfig` and runs the core
loop :func:`~crucible_train.core.training.dpo.run_dpo`.
"""

from __future__ import annotations

import itertools
from typing import cast

import attrs

from crucible_train.core.datasets import ColumnNames, PreferenceRow, iter_rows
from crucible_train.core.training.data import SupervisedRenderer
from crucible_train.core.training.dpo import DpoLoopConfig, run_dpo
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.preference_data import PreferenceData, pairs_to_datums
from crucible_train.core.training.validators import (
    column_problem,
    non_negative_problem,
    positive_problem,
)
from crucible_train.ports.dataset_store import DatasetStore
from crucible_train.recipes.arithmetic.pairs import arithmetic_pairs
from crucible_train.recipes.arithmetic.task import (
    ARITHMETIC,
    DEFAULT_MAX_OPERAND,
    ArithmeticTask,
)
from crucible_train.recipes.settings import key_order

__all__ = ["DpoConfig", "build_preference_data", "load_preference_rows", "run_dpo_job"]


@attrs.frozen(
    kw_only=True,
    field_transformer=key_order(
        "learning_rate",
        "lr_schedule",
        "warmup_steps",
        "beta",
        "batch_size",
        "num_epochs",
        "max_steps",
        "seed",
        "eval_every",
        "save_every",
        "submit_ahead",
        "dataset",
        "test_dataset",
        "prompt_key",
        "chosen_key",
        "rejected_key",
        "train_size",
        "test_size",
        "max_operand",
        "start_from_step",
        "reference_batch_size",
        "beta1",
        "beta2",
        "eps",
        "weight_decay",
        "grad_clip_norm",
    ),
)
class DpoConfig(DpoLoopConfig):
    """Settings of the DPO loop (``train.dpo`` in containers.yaml).

    The defaults start from the SFT checkpoint at step 300, where the policy already
    prefers the correct answer on ~0.93 of the held-out pairs of
    :func:`~crucible_train.recipes.arithmetic.pairs.rejected_answer` but has not yet
    saturated (its log-probabilities still move), and run 8 epochs over 1,000 pairs (248
    steps). Measured with these defaults on the default SFT run: ``test/dpo_accuracy``
    (chosen log-ratio above rejected, 0 at the start by construction) 0 -> 0.935, and
    0.91 / 0.935 with ``seed`` 1 / 2; the policy's own held-out preference
    ``test/accuracy`` 0.93 -> 0.975. Three epochs (93 steps) stopped at 0.86-0.905;
    starting at step 100 or 200 (more headroom) generalised worse (0.71 / 0.895); 3,000
    distinct pairs for one epoch reached only 0.795. Larger learning rates (3e-4, 1e-3
    at β 0.1) first pushed both log-probabilities down.

    The loop's own fields are described on
    :class:`~crucible_train.core.training.dpo.DpoLoopConfig`; the entries below are
    the task's fields and those whose meaning the recipe narrows.

    Args:
        dataset: ``"arithmetic"`` (built-in pairs) or a dataset of preference rows
            (``prompt``/``chosen``/``rejected``, or an implicit prompt shared by chosen and
            rejected conversations), in any format the DatasetStore port reads.
        test_dataset: held-out preference rows; ``None`` uses the arithmetic test split for
            ``dataset="arithmetic"`` and no held-out evaluation otherwise.
        prompt_key: the column holding a preference row's prompt (a ``messages`` column is
            read as the prompt too; neither: the prompt chosen and rejected share).
        chosen_key: the column holding the preferred completion.
        rejected_key: the column holding the other completion.
        train_size: arithmetic training pairs used (``None`` = the whole train split).
        test_size: held-out pairs evaluated (at most).
        max_operand: operands of the arithmetic pairs range over ``0 .. max_operand``.
        start_from_step: the step of the SFT checkpoint the CLI starts from; ``None`` is
            the final checkpoint.
    """

    dataset: str = ARITHMETIC
    test_dataset: str | None = None
    prompt_key: str = ColumnNames().prompt_key
    chosen_key: str = ColumnNames().chosen_key
    rejected_key: str = ColumnNames().rejected_key
    train_size: int | None = 1000
    test_size: int = 200
    max_operand: int = DEFAULT_MAX_OPERAND
    start_from_step: int | None = 300

    def problems(self) -> list[str | None]:
        """The loop's checks, then those of the data fields."""
        problems = [
            *super().problems(),
            positive_problem("test_size", self.test_size),
            positive_problem("train_size", self.train_size, allow_none=True),
            positive_problem("max_operand", self.max_operand),
            non_negative_problem("start_from_step", self.start_from_step, allow_none=True),
            column_problem("prompt_key", self.prompt_key),
            column_problem("chosen_key", self.chosen_key),
            column_problem("rejected_key", self.rejected_key),
        ]
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            problems.append(f"dataset must be 'arithmetic' or a dataset path, got {self.dataset!r}")
        return problems

    def columns(self) -> ColumnNames:
        """The column names preference rows are read with."""
        return ColumnNames(
            prompt_key=self.prompt_key, chosen_key=self.chosen_key, rejected_key=self.rejected_key
        )


def load_preference_rows(
    store: DatasetStore, source: str, config: DpoConfig, limit: int | None = None
) -> list[PreferenceRow]:
    """The first ``limit`` (``None``: every) preference rows of ``source``.

    Raises:
        InvalidDataError: the dataset is empty, holds another kind of row, or a row is
            malformed (names the file and line/row, the columns it has, the ``*_key`` to set).
    """
    rows = iter_rows(store, source, ("preference",), config.columns())
    # iter_rows holds every row to the preference kind.
    return cast("list[PreferenceRow]", list(itertools.islice(rows, limit)))


def build_preference_data(
    config: DpoConfig, renderer: SupervisedRenderer, datasets: DatasetStore
) -> tuple[PreferenceData, PreferenceData]:
    """Training and held-out datums of ``config.dataset`` / ``config.test_dataset``."""
    if config.dataset == ARITHMETIC:
        task = ArithmeticTask(max_operand=config.max_operand, seed=config.seed)
        train = arithmetic_pairs(task.problems("train", limit=config.train_size))
        test = (
            arithmetic_pairs(task.problems("test", limit=config.test_size))
            if config.test_dataset is None
            else []
        )
    else:
        train = load_preference_rows(datasets, config.dataset, config)
        test = []
    if config.test_dataset is not None:
        test = load_preference_rows(datasets, config.test_dataset, config, config.test_size)
    return pairs_to_datums(train, renderer), pairs_to_datums(test, renderer)


def run_dpo_job(ctx: JobContext, config: DpoConfig) -> LoopResult:
    """Build the preference data of ``config`` and run :func:`run_dpo` with ``ctx``'s ports."""
    train, test = build_preference_data(config, ctx.renderer, ctx.datasets)
    if train.skipped or test.skipped:
        ctx.progress.note(
            f"skipped {train.skipped + test.skipped} preference pairs with a completion "
            "that renders to no trainable token"
        )
    ctx.progress.note(
        f"DPO on {train.num_pairs} pairs, {test.num_pairs} held out, beta {config.beta}"
    )
    return run_dpo(
        config,
        training=ctx.training,
        train_pairs=train.datums,
        test_pairs=test.datums,
        metrics=ctx.metrics,
        run_store=ctx.run_store,
        progress=ctx.progress,
        stop=ctx.stop,
        resume=ctx.resume,
    )
