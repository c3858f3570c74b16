"""Core: evaluators run during training, and the runner that calls them on a cadence.

An evaluator measures a model through one port and returns plain ``dict[str, float]``
metrics. Two kinds exist, named by their ``client_kind``:

* :class:`TrainingClientEvaluator` reads the model through a
  :class:`~crucible_train.ports.TrainingClient` (``client_kind = "training"``), for
  example :class:`NLLEvaluator`, the held-out negative log-likelihood;
* :class:`SamplingClientEvaluator` reads it through a
  :class:`~crucible_train.ports.SamplingClient` (``client_kind = "sampling"``), for
  example :class:`ComparisonEvaluator`, a judge's pairwise preference.

:class:`EvaluatorRunner` runs the due evaluators every ``every`` steps, prefixes their
keys (``test/nll``), logs them through a :class:`~crucible_train.ports.MetricsSink` and
never lets a failing evaluator stop training.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from crucible_train.errors import ConfigurationError, InvalidDataError, LLMClientError
from crucible_train.ports.llm import LLMClient, LLMParams
from crucible_train.ports.metrics import MetricsSink, MetricValue
from crucible_train.ports.sampling import SamplingClient
from crucible_train.ports.training import TrainingClient
from crucible_train.types import Datum, ForwardBackwardOutput

__all__ = [
    "JUDGE_PROMPT_TEMPLATE",
    "ComparisonEvaluator",
    "ComparisonPair",
    "Evaluator",
    "EvaluatorRunner",
    "NLLEvaluator",
    "SamplingClientEvaluator",
    "TrainingClientEvaluator",
    "Verdict",
    "compute_mean_nll",
    "order_score",
    "parse_verdict",
    "wilson_interval",
]

_log = logging.getLogger(__name__)

ClientKind: TypeAlias = Literal["training", "sampling"]
Verdict: TypeAlias = Literal["A", "B", "tie"]
ComparisonPair: TypeAlias = tuple[str, str, str]
"""``(prompt, response_a, response_b)``."""


# --- protocols --------------------------------------------------------------------------


@runtime_checkable
class TrainingClientEvaluator(Protocol):
    """Measures the model through a training client (forward passes only).

    Attributes:
        name: identifies the evaluator in error metrics (``test/<name>/errors``).
        client_kind: always ``"training"``; tells the runner which client to pass.
    """

    @property
    def name(self) -> str:
        """The evaluator's name."""
        ...

    @property
    def client_kind(self) -> Literal["training"]:
        """``"training"``."""
        ...

    def __call__(self, training_client: TrainingClient) -> dict[str, float]:
        """Evaluate and return metrics (keys without the runner's prefix)."""
        ...


@runtime_checkable
class SamplingClientEvaluator(Protocol):
    """Measures the model through a sampling client.

    Attributes:
        name: identifies the evaluator in error metrics (``test/<name>/errors``).
        client_kind: always ``"sampling"``; tells the runner which client to pass.
    """

    @property
    def name(self) -> str:
        """The evaluator's name."""
        ...

    @property
    def client_kind(self) -> Literal["sampling"]:
        """``"sampling"``."""
        ...

    def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Evaluate and return metrics (keys without the runner's prefix)."""
        ...


Evaluator: TypeAlias = TrainingClientEvaluator | SamplingClientEvaluator


# --- runner -----------------------------------------------------------------------------


class EvaluatorRunner:
    """Runs evaluators every ``every`` steps and logs their prefixed metrics.

    Step 0 is due (a baseline before any update). An evaluator whose client was not given
    to :meth:`maybe_run` is skipped at that step (reported once). An evaluator that raises
    is reported through :mod:`logging` once (with its traceback; later failures only at
    DEBUG level so a broken evaluator cannot flood the log) and counted: the step's
    metrics then hold ``<prefix><name>/errors``, the evaluator's failures so far. Training
    continues either way.

    Args:
        evaluators: the evaluators, run in this order.
        metrics: where the metrics are logged, at the step they were computed for.
        every: run on steps where ``step % every == 0``; 0 disables the runner.
        prefix: prepended to every key the evaluators return.

    Raises:
        ConfigurationError: ``every`` is negative, or two evaluators share a name.
    """

    def __init__(
        self,
        *,
        evaluators: Sequence[Evaluator],
        metrics: MetricsSink,
        every: int,
        prefix: str = "test/",
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ConfigurationError(
                f"EvaluatorRunner every is {every!r}; use a whole number >= 0 (0 disables)"
            )
        names = [evaluator.name for evaluator in evaluators]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            # Their metrics and error counters would overwrite each other.
            raise ConfigurationError(
                f"EvaluatorRunner: evaluator names must be unique; repeated: {duplicates}"
            )
        self._evaluators = tuple(evaluators)
        self._metrics = metrics
        self._every = every
        self._prefix = prefix
        self._errors: dict[str, int] = dict.fromkeys(names, 0)
        self._reported: set[str] = set()

    @property
    def errors(self) -> Mapping[str, int]:
        """Evaluator name → how many times it has failed so far."""
        return dict(self._errors)

    def is_due(self, step: int) -> bool:
        """Whether :meth:`maybe_run` would run the evaluators at ``step``."""
        return self._every > 0 and step % self._every == 0

    def maybe_run(
        self,
        step: int,
        *,
        training_client: TrainingClient | None = None,
        sampling_client: SamplingClient | Callable[[], SamplingClient] | None = None,
        force: bool = False,
    ) -> dict[str, float]:
        """Run the evaluators if ``step`` is due, log and return their prefixed metrics.

        Args:
            step: the training step the evaluation belongs to (also the logged step).
            training_client: passed to training-client evaluators.
            sampling_client: passed to sampling-client evaluators; a callable is called
                once, only when a sampling evaluator runs (snapshots cost a weight save).
            force: run even when ``step`` is not due (e.g. after the last step).

        Returns:
            The metrics logged (empty when the step is not due or nothing ran).
        """
        if not (force and self._evaluators) and not self.is_due(step):
            return {}
        if callable(sampling_client) and not isinstance(sampling_client, SamplingClient):
            needs = any(e.client_kind == "sampling" for e in self._evaluators)
            sampling_client = sampling_client() if needs else None
        results: dict[str, float] = {}
        for evaluator in self._evaluators:
            results.update(self._run_one(evaluator, step, training_client, sampling_client))
        if results:
            logged: dict[str, MetricValue] = dict(results)
            self._metrics.log_metrics(logged, step=step)
        return results

    def _run_one(
        self,
        evaluator: Evaluator,
        step: int,
        training_client: TrainingClient | None,
        sampling_client: SamplingClient | None,
    ) -> dict[str, float]:
        name = evaluator.name
        try:
            # Both protocols have the same members, so dispatch on the declared kind.
            if evaluator.client_kind == "training":
                if training_client is None:
                    self._report_once(name, f"evaluator {name!r} skipped: no training_client")
                    return {}
                raw = evaluator(training_client)
            else:
                if sampling_client is None:
                    self._report_once(name, f"evaluator {name!r} skipped: no sampling_client")
                    return {}
                raw = evaluator(sampling_client)
            return {f"{self._prefix}{key}": float(value) for key, value in raw.items()}
        except Exception as exc:
            # Never crash training because a measurement failed; count it instead.
            self._errors[name] += 1
            message = f"evaluator {name!r} failed at step {step}: {type(exc).__name__}: {exc}"
            if name in self._reported:
                _log.debug(message)
            else:
                self._reported.add(name)
                _log.warning(message + " (later failures are only counted)", exc_info=True)
            return {f"{self._prefix}{name}/errors": float(self._errors[name])}

    def _report_once(self, name: str, message: str) -> None:
        key = f"skip:{name}"
        if key not in self._reported:
            self._reported.add(key)
            _log.warning(message)


# --- negative log-likelihood ------------------------------------------------------------


def compute_mean_nll(
    logprobs: Iterable[Sequence[float] | np.ndarray],
    weights: Iterable[Sequence[float] | np.ndarray],
) -> float:
    """Weighted mean negative log-likelihood ``-Σ(lp·w) / Σw`` over all datums.

    Args:
        logprobs: one array of per-token log-probabilities per datum.
        weights: one array of per-token weights per datum (same shapes).

    Raises:
        InvalidDataError: shapes differ, or ``Σw`` is 0 (the mean is undefined; we refuse
            rather than return NaN, which would pass silently through a metrics sink).
    """
    total = 0.0
    weight_sum = 0.0
    for index, (lp, w) in enumerate(zip(logprobs, weights, strict=True)):
        lp_array = np.asarray(lp, dtype=np.float64)
        w_array = np.asarray(w, dtype=np.float64)
        if lp_array.shape != w_array.shape:
            raise InvalidDataError(
                f"datum {index}: {lp_array.shape[0] if lp_array.ndim else 0} logprobs but "
                f"weights of shape {list(w_array.shape)}"
            )
        # Zero-weight positions (prompt tokens) may hold -inf; 0 * -inf would be NaN.
        mask = w_array != 0
        total += float(np.sum(lp_array[mask] * w_array[mask]))
        weight_sum += float(np.sum(w_array))
    if weight_sum == 0:
        raise InvalidDataError(
            "the evaluation datums have total weight 0, so their mean NLL is undefined; "
            "give some target tokens a positive weight"
        )
    return -total / weight_sum


class NLLEvaluator:
    """Held-out negative log-likelihood through forward passes only.

    Calls ``training_client.forward(batch, "cross_entropy")``, which touches no
    gradients, never ``forward_backward`` (evaluating must not accumulate gradients into
    the next optimiser step). Returns ``{name: -Σ(lp·w)/Σw, name + "/weight": Σw}``.

    Args:
        datums: evaluation datums holding ``target_tokens`` and ``weights``.
        name: the metric key (the runner turns ``nll`` into ``test/nll``).
        batch_size: datums per forward call; all batches are submitted before waiting,
            so the backend pipelines them.

    Raises:
        ConfigurationError: no datums, a datum without ``target_tokens`` or ``weights``,
            or ``batch_size`` < 1.
    """

    client_kind: Literal["training"] = "training"

    def __init__(self, *, datums: Iterable[Datum], name: str = "nll", batch_size: int = 64) -> None:
        self._datums = tuple(datums)
        if not self._datums:
            raise ConfigurationError("NLLEvaluator needs at least one datum")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(f"NLLEvaluator batch_size is {batch_size!r}; use >= 1")
        missing = [
            index
            for index, datum in enumerate(self._datums)
            if not {"target_tokens", "weights"} <= set(datum.loss_fn_inputs)
        ]
        if missing:
            raise ConfigurationError(
                f"NLLEvaluator: datums {missing[:5]} lack target_tokens or weights "
                "(cross_entropy needs both)"
            )
        self._name = name
        self._batch_size = batch_size

    @property
    def name(self) -> str:
        """The metric key."""
        return self._name

    def __call__(self, training_client: TrainingClient) -> dict[str, float]:
        """Compute the weighted mean NLL of the datums under the current weights.

        Raises:
            InvalidDataError: the datums' weights sum to 0, or an output lacks logprobs.
            TrainingClientError: the backend failed.
        """
        size = self._batch_size
        batches = [self._datums[i : i + size] for i in range(0, len(self._datums), size)]
        futures: list[Future[ForwardBackwardOutput]] = [
            training_client.forward(batch, "cross_entropy") for batch in batches
        ]
        logprobs: list[np.ndarray] = []
        for future in futures:
            for output in future.result().loss_fn_outputs:
                if "logprobs" not in output:
                    raise InvalidDataError("a forward output has no 'logprobs'")
                logprobs.append(output["logprobs"].to_numpy())
        if len(logprobs) != len(self._datums):
            raise InvalidDataError(
                f"forward returned {len(logprobs)} outputs for {len(self._datums)} datums"
            )
        weights = [datum.loss_fn_inputs["weights"].to_numpy() for datum in self._datums]
        nll = compute_mean_nll(logprobs, weights)
        return {self._name: nll, f"{self._name}/weight": float(sum(w.sum() for w in weights))}


# --- pairwise comparison by a judge -----------------------------------------------------

JUDGE_PROMPT_TEMPLATE = """\
You are an impartial judge. Compare two responses to the same prompt.

[Prompt]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}

Which response answers the prompt better? Judge helpfulness, correctness and clarity. \
Do not let the order of the responses or their length influence you. You may explain \
briefly; then finish with one final line that is exactly one of:
Verdict: A
Verdict: B
Verdict: tie
"""
"""The judge's prompt; ``{prompt}``, ``{response_a}`` and ``{response_b}`` are filled in."""

_VERDICT_LINE = re.compile(
    r"verdict[\s*_:=\-\[\(\"'`]*(?:response\s+)?(a|b|tie|draw)\b", re.IGNORECASE
)
_BARE_WORD = re.compile(r"[^a-z]+")
_BARE_VERDICTS: dict[str, Verdict] = {
    "a": "A",
    "b": "B",
    "tie": "tie",
    "draw": "tie",
    "responsea": "A",
    "responseb": "B",
}


def parse_verdict(text: str) -> Verdict | None:
    """Read a judge's answer as ``"A"``, ``"B"`` or ``"tie"``; ``None`` when unreadable.

    Accepted, in order: the last ``Verdict: X`` (any case, optional markdown such as
    ``**Verdict:** [[B]]``, ``Response A``, ``draw`` meaning tie); otherwise a last
    non-empty line that is only ``A``, ``B``, ``tie`` or ``draw`` once punctuation and
    markdown are stripped (``"A."``, ``"**B**"``). Anything else (prose mentioning both
    letters) is not guessed at.
    """
    matches = _VERDICT_LINE.findall(text)
    if matches:
        return _BARE_VERDICTS[matches[-1].lower()]
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    return _BARE_VERDICTS.get(_BARE_WORD.sub("", lines[-1].lower()))


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % for the default ``z``).

    Unlike ``p ± z·√(p(1-p)/n)`` it stays inside [0, 1] and is sensible for small ``n``
    and for ``p`` near 0 or 1. ``successes`` may be fractional (ties scored 0.5); the
    interval then treats ``successes / n`` as the observed proportion, an approximation.

    Returns:
        ``(low, high)``; ``(0.0, 1.0)`` when ``n`` is 0.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def order_score(verdict: Verdict, a_shown_first: bool) -> float:
    """Score of the original response A for one judged order."""
    if verdict == "tie":
        return 0.5
    a_won = verdict == "A"
    return 1.0 if a_won == a_shown_first else 0.0


class ComparisonEvaluator:
    """Win rate of ``response_a`` over ``response_b`` according to an LLM judge.

    Each pair is judged twice, A/B and then B/A, so a judge that favours a position
    cancels out. The pair's score is the mean of both orders' scores for response A (win
    1, tie 0.5, loss 0): agreeing wins give 1 or 0, an inconsistent pair (A wins in one
    order, B in the other) gives 0.5, a win and a tie give 0.75. A pair with an
    unreadable verdict (see :func:`parse_verdict`) in either order is left out.

    The responses are fixed, so the sampling client passed by the runner is not used;
    generate the responses (e.g. with the current policy) before building the evaluator.

    Returned keys, under ``name/``: ``win_rate`` (mean pair score), ``ci95_low`` and
    ``ci95_high`` (Wilson score interval, see :func:`wilson_interval`), ``n`` (pairs
    scored), ``ties`` (pairs judged a tie in both orders), ``inconsistent`` and
    ``parse_failures`` (unreadable verdicts).

    Args:
        judge: the LLM asked for verdicts (thread-safe per its port).
        pairs: ``(prompt, response_a, response_b)`` triples.
        name: prefix of the returned keys.
        template: the judge prompt; see :data:`JUDGE_PROMPT_TEMPLATE`.
        params: judge generation settings (default: temperature 0, 512 tokens).
        concurrency: judge calls in flight at once.

    Raises:
        ConfigurationError: no pairs, or ``concurrency`` < 1.
    """

    client_kind: Literal["sampling"] = "sampling"

    def __init__(
        self,
        *,
        judge: LLMClient,
        pairs: Iterable[ComparisonPair],
        name: str = "comparison",
        template: str = JUDGE_PROMPT_TEMPLATE,
        params: LLMParams | None = None,
        concurrency: int = 1,
    ) -> None:
        self._pairs = tuple((str(p), str(a), str(b)) for p, a, b in pairs)
        if not self._pairs:
            raise ConfigurationError("ComparisonEvaluator needs at least one pair")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(
                f"ComparisonEvaluator concurrency is {concurrency!r}; use >= 1"
            )
        self._judge = judge
        self._name = name
        self._template = template
        self._params = params or LLMParams(temperature=0.0, max_tokens=512)
        self._concurrency = concurrency

    @property
    def name(self) -> str:
        """Prefix of the returned keys."""
        return self._name

    def _ask(self, prompt: str, first: str, second: str) -> Verdict | None:
        content = self._template.format(prompt=prompt, response_a=first, response_b=second)
        answer = self._judge.chat([{"role": "user", "content": content}], self._params)
        return parse_verdict(answer.text)

    def __call__(self, sampling_client: SamplingClient | None = None) -> dict[str, float]:
        """Judge every pair in both orders and summarise.

        Raises:
            LLMClientError: the judge failed, or no pair got two readable verdicts.
        """
        jobs = [
            (prompt, *order)
            for prompt, a, b in self._pairs
            for order in ((a, b), (b, a))  # A/B first, then B/A
        ]
        if self._concurrency == 1:
            verdicts = [self._ask(*job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
                verdicts = list(pool.map(lambda job: self._ask(*job), jobs))
        return self._summarise(verdicts)

    def _summarise(self, verdicts: Sequence[Verdict | None]) -> dict[str, float]:
        scores: list[float] = []
        ties = inconsistent = 0
        parse_failures = sum(verdict is None for verdict in verdicts)
        for first, second in zip(verdicts[0::2], verdicts[1::2], strict=True):
            if first is None or second is None:
                continue
            s1, s2 = order_score(first, True), order_score(second, False)
            scores.append((s1 + s2) / 2)
            ties += first == "tie" and second == "tie"
            inconsistent += {s1, s2} == {0.0, 1.0}
        if not scores:
            raise LLMClientError(
                f"the judge gave no readable verdict for any of {len(self._pairs)} pairs "
                f"({parse_failures} unreadable answers); check the judge model and template"
            )
        n = len(scores)
        wins = sum(scores)
        low, high = wilson_interval(wins, n)
        prefix = self._name
        return {
            f"{prefix}/win_rate": wins / n,
            f"{prefix}/ci95_low": low,
            f"{prefix}/ci95_high": high,
            f"{prefix}/n": float(n),
            f"{prefix}/ties": float(ties),
            f"{prefix}/inconsistent": float(inconsistent),
            f"{prefix}/parse_failures": float(parse_failures),
        }
