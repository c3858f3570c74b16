"""Evaluation: stream samples through generation and scorers, persist and aggregate results."""

from __future__ import annotations

from crucible_train.core.evaluation.batch_runner import (
    EvalConfig,
    EvalResult,
    EvalSample,
    aggregate_metrics,
    completed_ids,
    persist_results,
    read_results,
    run_fingerprint,
    stream_evaluate,
)
from crucible_train.core.evaluation.evaluators import (
    ComparisonEvaluator,
    EvaluatorRunner,
    NLLEvaluator,
    SamplingClientEvaluator,
    TrainingClientEvaluator,
)
from crucible_train.core.evaluation.samples import (
    REPEAT_KEY,
    EvalInput,
    input_messages,
    repeat_sample,
)

__all__ = [
    "REPEAT_KEY",
    "ComparisonEvaluator",
    "EvalConfig",
    "EvalInput",
    "EvalResult",
    "EvalSample",
    "EvaluatorRunner",
    "NLLEvaluator",
    "SamplingClientEvaluator",
    "TrainingClientEvaluator",
    "aggregate_metrics",
    "completed_ids",
    "input_messages",
    "persist_results",
    "read_results",
    "repeat_sample",
    "run_fingerprint",
    "stream_evaluate",
]
