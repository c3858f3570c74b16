"""``crucible-train train sft``: supervised fine-tuning on the arithmetic task or a dataset.

The recipe builds the data (rendered datums) and evaluators of :class:`SftConfig` and runs
the core loop :func:`~crucible_train.core.training.sft.run_sft`.
"""

from __future__ import annotations

from typing import Any, cast

import attrs

from crucible_train.core.datasets import (
    ColumnNames,
    ConversationRow,
    PromptCompletionRow,
    Row,
    RowKind,
    load_rows,
)
from crucible_train.core.evaluation.evaluators import Evaluator, EvaluatorRunner, NLLEvaluator
from crucible_train.core.renderers.messages import TrainOnWhat
from crucible_train.core.training.data import (
    ConversationData,
    SupervisedRenderer,
    SupervisedRow,
    conversations_to_datums,
    rows_to_datums,
)
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.rewarding import check_reward_specs
from crucible_train.core.training.sft import SftLoopConfig, run_sft
from crucible_train.core.training.validators import column_problem, whole_problem
from crucible_train.errors import ConfigurationError
from crucible_train.ports.dataset_store import DatasetStore
from crucible_train.recipes.arithmetic.evaluator import ArithmeticAccuracyEvaluator
from crucible_train.recipes.arithmetic.task import (
    ARITHMETIC,
    DEFAULT_MAX_OPERAND,
    ArithmeticTask,
)
from crucible_train.recipes.prompts import (
    build_job_reward,
    is_prompt_dataset,
    reward_test_evaluator,
)
from crucible_train.recipes.settings import key_order

__all__ = [
    "SFT_ROW_KINDS",
    "SftConfig",
    "build_sft_data",
    "load_held_out_rows",
    "load_sft_rows",
    "run_sft_job",
]

SFT_ROW_KINDS: tuple[RowKind, ...] = ("conversation", "prompt_completion")
"""The dataset row kinds SFT trains on and scores ``test/nll`` on."""


@attrs.frozen(
    kw_only=True,
    field_transformer=key_order(
        "learning_rate",
        "lr_schedule",
        "warmup_steps",
        "batch_size",
        "num_epochs",
        "max_steps",
        "seed",
        "eval_every",
        "save_every",
        "submit_ahead",
        "beta1",
        "beta2",
        "eps",
        "weight_decay",
        "grad_clip_norm",
        "dataset",
        "test_dataset",
        "messages_key",
        "prompt_key",
        "completion_key",
        "test_reward",
        "test_size",
        "max_operand",
        "train_on_what",
        "max_length",
        "normalize_weights",
        "eval_max_tokens",
    ),
)
class SftConfig(SftLoopConfig):
    """Settings of supervised fine-tuning (``train sft``; ``key=value`` on the command line).

    The defaults are the reference recipe for the embedded default model on the built-in
    arithmetic task (AdamW 1e-3, batch 64, 600 steps with warmup and linear decay).

    The loop's own fields are described on
    :class:`~crucible_train.core.training.sft.SftLoopConfig`; the entries below are
    the task's fields and those whose meaning the recipe narrows.

    Args:
        seed: seeds the per-epoch shuffles and the order of the arithmetic problems.
        eval_every: run the evaluators before steps ``0, N, 2N, ...`` and after the last
            step; 0 runs them only after the last step.
        dataset: ``"arithmetic"`` (the built-in task) or a dataset of conversation rows
            (``messages``) or prompt-completion rows (``prompt``/``completion``, the loss
            on the completion only), in any format the DatasetStore port reads.
        test_dataset: held-out rows for ``test/nll`` (conversation or prompt-completion
            rows), or prompt-only rows (``prompt``, ``answer``, ...) answered greedily and
            scored with test_reward (``test/reward``, ``test/<label>``); for
            ``arithmetic`` the task's held-out split is used when this is ``None``.
        messages_key: the column holding a conversation's message list.
        prompt_key: the column holding the prompt of a prompt-completion row.
        completion_key: the column holding the completion of a prompt-completion row.
        test_reward: the reward spec(s) scoring a prompt-only test_dataset (a name, a
            ``package.module:function`` path or a list of ``{name, weight, ...options}``;
            see docs/rewards.md).
        test_size: held-out arithmetic problems evaluated (``test/nll``, ``test/accuracy``),
            or prompt-only test_dataset rows scored (at most).
        max_operand: arithmetic operands range over ``0 .. max_operand``.
        train_on_what: which tokens of a conversation get weight (a ``TrainOnWhat``
            value); prompt-completion rows always train on the completion only.
        max_length: keep at most this many tokens of each conversation; ``None`` keeps all.
        normalize_weights: per-example token-mean weights instead of per-token 0/1.
        eval_max_tokens: new tokens sampled per greedy answer (arithmetic ``test/accuracy``,
            a prompt-only test_dataset's ``test/reward``).

    Raises:
        ConfigurationError: a field is out of range (the message names it).
    """

    eval_every: int = 100
    dataset: str = ARITHMETIC
    test_dataset: str | None = None
    messages_key: str = ColumnNames().messages_key
    prompt_key: str = ColumnNames().prompt_key
    completion_key: str = ColumnNames().completion_key
    test_reward: str | list[str | dict[str, Any]] | dict[str, Any] = "exact_match"
    test_size: int = 200
    max_operand: int = DEFAULT_MAX_OPERAND
    train_on_what: str = "last_assistant_message"
    max_length: int | None = 512
    normalize_weights: bool = False
    eval_max_tokens: int = 8

    def problems(self) -> list[str | None]:
        """The loop's checks, then those of the data and evaluation fields."""
        problems = [
            *super().problems(),
            whole_problem("eval_every", self.eval_every, 0),
            whole_problem("test_size", self.test_size, 1),
            whole_problem("max_operand", self.max_operand, 1),
            None if self.max_length is None else whole_problem("max_length", self.max_length, 2),
            whole_problem("eval_max_tokens", self.eval_max_tokens, 1),
            column_problem("messages_key", self.messages_key),
            column_problem("prompt_key", self.prompt_key),
            column_problem("completion_key", self.completion_key),
        ]
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            problems.append(f"dataset must be 'arithmetic' or a dataset path, got {self.dataset!r}")
        if self.test_dataset is not None and (
            not isinstance(self.test_dataset, str) or not self.test_dataset.strip()
        ):
            problems.append(
                f"test_dataset must be a dataset path or null, got {self.test_dataset!r}"
            )
        try:
            check_reward_specs(self.test_reward)
        except ConfigurationError as exc:
            problems.append(f"test_reward: {exc}")
        allowed = [item.value for item in TrainOnWhat]
        if self.train_on_what not in allowed:
            problems.append(f"train_on_what must be one of {allowed}, got {self.train_on_what!r}")
        flag: object = self.normalize_weights
        if not isinstance(flag, bool):
            problems.append(
                f"normalize_weights must be true or false, got {self.normalize_weights!r}"
            )
        return problems

    def columns(self) -> ColumnNames:
        """The column names rows are read with."""
        return ColumnNames(
            messages_key=self.messages_key,
            prompt_key=self.prompt_key,
            completion_key=self.completion_key,
        )


def load_sft_rows(store: DatasetStore, source: str, config: SftConfig) -> list[SupervisedRow]:
    """The conversation or prompt-completion rows of ``source`` (kind from its first row).

    Raises:
        InvalidDataError: the dataset is empty, holds another kind of row, or a row is
            malformed (names the file and line/row, the columns it has, the ``*_key`` to set).
    """
    # iter_rows holds every row to the first row's kind, one of SFT_ROW_KINDS.
    return cast("list[SupervisedRow]", load_rows(store, source, SFT_ROW_KINDS, config.columns()))


def build_sft_data(
    store: DatasetStore, source: str, config: SftConfig, renderer: SupervisedRenderer
) -> tuple[list[SupervisedRow], ConversationData]:
    """The rows of ``source`` (:func:`load_sft_rows`) and the datums ``train sft`` trains on."""
    rows = load_sft_rows(store, source, config)
    return rows, rows_to_datums(rows, renderer, **_render_options(config))


def load_held_out_rows(store: DatasetStore, config: SftConfig) -> list[Row] | None:
    """The rows of ``config.test_dataset`` (``None`` when unset), for the held-out evaluators.

    Conversation and prompt-completion rows are scored by ``test/nll``.
    """
    if config.test_dataset is None:
        return None
    return list(load_sft_rows(store, config.test_dataset, config))


def _check_batch_size(config: SftConfig, n_train: int, skipped: int) -> None:
    if config.batch_size > n_train:
        note = f" ({skipped} conversations skipped: no trainable token)" if skipped else ""
        raise ConfigurationError(
            f"batch_size {config.batch_size} is larger than the training set "
            f"({n_train} examples{note}); set batch_size <= {n_train} or add data"
        )


def run_sft_job(ctx: JobContext, config: SftConfig) -> LoopResult:
    """``train sft``: build the data and evaluators of ``config`` and run :func:`run_sft`.

    Data: ``config.dataset == "arithmetic"`` uses the built-in task (train split; the
    held-out split, ``test_size`` problems, for ``test/nll`` and ``test/accuracy``);
    otherwise ``config.dataset`` (and ``config.test_dataset``, if given) are read through
    ``ctx.datasets`` (:func:`load_sft_rows`). Conversations with no trainable token are
    skipped, reported through ``ctx.progress.note`` and counted in the ``data/skipped``
    metric.

    Raises:
        ConfigurationError: the config is inconsistent with the data (batch larger than
            the training set, nothing trainable).
        InvalidDataError: a dataset is empty, holds rows SFT does not train on, or a row is
            malformed (names the file and line/row); the DatasetStore raises
            ``DatasetNotFoundError`` for a missing source, ``DatasetFormatError`` for a
            record it cannot parse and ``AdapterUnavailableError`` (with the install hint)
            when reading the source needs a package that is not installed.
    """
    task = (
        ArithmeticTask(max_operand=config.max_operand, seed=config.seed)
        if config.dataset == ARITHMETIC
        else None
    )
    train = _training_data(ctx, config, task)
    evaluators = _held_out_evaluators(ctx, config, task)
    runner = (
        EvaluatorRunner(evaluators=evaluators, metrics=ctx.metrics, every=config.eval_every)
        if evaluators
        else None
    )
    return run_sft(
        config,
        training=ctx.training,
        train_datums=train.datums,
        metrics=ctx.metrics,
        run_store=ctx.run_store,
        evaluators=runner,
        progress=ctx.progress,
        stop=ctx.stop,
        resume=ctx.resume,
        data_metrics={"data/skipped": float(train.skipped)},
    )


def _render_options(config: SftConfig) -> dict[str, Any]:
    return {
        "train_on_what": config.train_on_what,
        "max_length": config.max_length,
        "normalize": config.normalize_weights,
    }


def _training_data(
    ctx: JobContext, config: SftConfig, task: ArithmeticTask | None
) -> ConversationData:
    """The training datums, with the notes and checks of what was skipped."""
    train_on_what = config.train_on_what
    if task is not None:
        conversations = [{"messages": p.messages()} for p in task.problems("train")]
        train = conversations_to_datums(conversations, ctx.renderer, **_render_options(config))
        total = len(conversations)
    else:
        rows, train = build_sft_data(ctx.datasets, config.dataset, config, ctx.renderer)
        total = len(rows)
        if isinstance(rows[0], PromptCompletionRow):
            train_on_what = TrainOnWhat.CUSTOMIZED.value
            ctx.progress.note(
                f"{config.dataset} holds prompt-completion rows: training on the completion "
                f"only (train_on_what={train_on_what!r})"
            )
    if train.skipped:
        ctx.progress.note(
            f"skipped {train.skipped} of {total} training conversations "
            f"that render to no trainable token (train_on_what={train_on_what!r})"
        )
    if not train.datums:
        raise ConfigurationError(
            f"no training conversation of {config.dataset!r} has a trainable token "
            f"(all {train.skipped} skipped with train_on_what={train_on_what!r})"
        )
    _check_batch_size(config, len(train.datums), train.skipped)
    return train


def _held_out_evaluators(
    ctx: JobContext, config: SftConfig, task: ArithmeticTask | None
) -> list[Evaluator]:
    """The held-out evaluators of ``train sft``.

    ``test/reward`` and ``test/<label>`` on a prompt-only ``test_dataset``; ``test/nll`` on a
    conversation or prompt-completion ``test_dataset`` (or the arithmetic split when none is
    given); ``test/accuracy`` on arithmetic.
    """
    evaluators: list[Evaluator] = []
    test: ConversationData | None = None
    if config.test_dataset is not None and is_prompt_dataset(
        ctx.datasets, config.test_dataset, config.columns()
    ):
        evaluators.append(
            reward_test_evaluator(
                ctx.datasets,
                config.test_dataset,
                renderer=ctx.renderer,
                reward=build_job_reward(ctx, config.test_reward),
                max_tokens=config.eval_max_tokens,
                limit=config.test_size,
                names=config.columns(),
            )
        )
        rows = None
    else:
        rows = load_held_out_rows(ctx.datasets, config)
    if rows is not None:
        nll_rows = [row for row in rows if isinstance(row, ConversationRow | PromptCompletionRow)]
        test = rows_to_datums(nll_rows, ctx.renderer, **_render_options(config))
        total = len(nll_rows)
    elif task is not None and config.test_dataset is None:
        conversations = [
            {"messages": p.messages()} for p in task.problems("test", config.test_size)
        ]
        test = conversations_to_datums(conversations, ctx.renderer, **_render_options(config))
        total = len(conversations)
    if test is not None:
        if test.skipped:
            ctx.progress.note(
                f"skipped {test.skipped} of {total} test conversations "
                "that render to no trainable token"
            )
        if test.datums:
            evaluators.append(NLLEvaluator(datums=test.datums, name="nll"))
    if task is not None:
        evaluators.append(
            ArithmeticAccuracyEvaluator(
                problems=task.problems("test", config.test_size),
                renderer=ctx.renderer,
                max_tokens=config.eval_max_tokens,
            )
        )
    return evaluators
