"""``crucible-train train sft``: supervised fine-tuning on the arithmetic task or a JSONL file.

The recipe builds the data (rendered datums) and evaluators of :class:`SftConfig` and runs
the core loop :func:`~crucible_train.core.training.sft.run_sft`.
"""

from __future__ import annotations

from typing import Any

import attrs

from crucible_train.core.evaluation.evaluators import Evaluator, EvaluatorRunner, NLLEvaluator
from crucible_train.core.renderers.messages import TrainOnWhat
from crucible_train.core.training.data import conversations_to_datums, load_conversations
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.core.training.rewarding import check_reward_specs
from crucible_train.core.training.sft import SftLoopConfig, run_sft
from crucible_train.core.training.validators import whole_problem
from crucible_train.errors import ConfigurationError
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

__all__ = ["SftConfig", "run_sft_job"]


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
        dataset: ``"arithmetic"`` (the built-in task) or a JSONL file of
            ``{"messages": [...]}`` lines, read through the DatasetStore port.
        test_dataset: a JSONL file of held-out conversations for ``test/nll``, or of
            prompt-only rows (``prompt``, ``answer``, ...) answered greedily and scored with
            test_reward (``test/reward``, ``test/<label>``); for ``arithmetic`` the task's
            held-out split is used when this is ``None``.
        test_reward: the reward spec(s) scoring a prompt-only test_dataset (a name, a
            ``package.module:function`` path or a list of ``{name, weight, ...options}``;
            see docs/rewards.md).
        test_size: held-out arithmetic problems evaluated (``test/nll``, ``test/accuracy``),
            or prompt-only test_dataset rows scored (at most).
        max_operand: arithmetic operands range over ``0 .. max_operand``.
        train_on_what: which tokens get weight (a ``TrainOnWhat`` value).
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
        ]
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            problems.append(f"dataset must be 'arithmetic' or a JSONL path, got {self.dataset!r}")
        if self.test_dataset is not None and (
            not isinstance(self.test_dataset, str) or not self.test_dataset.strip()
        ):
            problems.append(f"test_dataset must be a JSONL path or null, got {self.test_dataset!r}")
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
    otherwise ``config.dataset`` (and ``config.test_dataset``, if given) are JSONL files
    read through ``ctx.datasets``. Conversations with no trainable token are skipped,
    reported through ``ctx.progress.note`` and counted in the ``data/skipped`` metric.

    Raises:
        ConfigurationError: the config is inconsistent with the data (batch larger than
            the training set, nothing trainable).
        InvalidDataError: a dataset is empty or a line is not a conversation (names the
            file and line); the DatasetStore raises ``DatasetNotFoundError`` for a missing
            file and ``DatasetFormatError`` for a line that is not JSON.
    """
    renderer = ctx.renderer
    kwargs: dict[str, Any] = {
        "train_on_what": config.train_on_what,
        "max_length": config.max_length,
        "normalize": config.normalize_weights,
    }
    task: ArithmeticTask | None = None
    if config.dataset == ARITHMETIC:
        task = ArithmeticTask(max_operand=config.max_operand, seed=config.seed)
        train_conversations = [{"messages": p.messages()} for p in task.problems("train")]
    else:
        train_conversations = load_conversations(ctx.datasets, config.dataset)
    train = conversations_to_datums(train_conversations, renderer, **kwargs)
    if train.skipped:
        ctx.progress.note(
            f"skipped {train.skipped} of {len(train_conversations)} training conversations "
            f"that render to no trainable token (train_on_what={config.train_on_what!r})"
        )
    if not train.datums:
        raise ConfigurationError(
            f"no training conversation of {config.dataset!r} has a trainable token "
            f"(all {train.skipped} skipped with train_on_what={config.train_on_what!r})"
        )
    _check_batch_size(config, len(train.datums), train.skipped)

    evaluators: list[Evaluator] = []
    test_conversations: list[dict[str, Any]] | None = None
    if config.test_dataset is not None and is_prompt_dataset(ctx.datasets, config.test_dataset):
        evaluators.append(
            reward_test_evaluator(
                ctx.datasets,
                config.test_dataset,
                renderer=renderer,
                reward=build_job_reward(ctx, config.test_reward),
                max_tokens=config.eval_max_tokens,
                limit=config.test_size,
            )
        )
    elif config.test_dataset is not None:
        test_conversations = load_conversations(ctx.datasets, config.test_dataset)
    elif task is not None:
        test_conversations = [
            {"messages": p.messages()} for p in task.problems("test", config.test_size)
        ]
    if test_conversations is not None:
        test = conversations_to_datums(test_conversations, renderer, **kwargs)
        if test.skipped:
            ctx.progress.note(
                f"skipped {test.skipped} of {len(test_conversations)} test conversations "
                "that render to no trainable token"
            )
        if test.datums:
            evaluators.append(NLLEvaluator(datums=test.datums, name="nll"))
    if task is not None:
        evaluators.append(
            ArithmeticAccuracyEvaluator(
                problems=task.problems("test", config.test_size),
                renderer=renderer,
                max_tokens=config.eval_max_tokens,
            )
        )
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
