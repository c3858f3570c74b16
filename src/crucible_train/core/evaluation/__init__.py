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

__all__ = [
    "ComparisonEvaluator",
    "EvalConfig",
    "EvalResult",
    "EvalSample",
    "EvaluatorRunner",
    "NLLEvaluator",
    "SamplingClientEvaluator",
    "TrainingClientEvaluator",
    "aggregate_metrics",
    "completed_ids",
    "persist_results",
    "read_results",
    "run_fingerprint",
    "stream_evaluate",
]
