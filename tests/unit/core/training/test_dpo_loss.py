"""The DPO loss: value, exact gradient (finite differences), β scaling and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crucible_train.core.training.dpo import dpo_loss, make_dpo_loss_fn
from crucible_train.types import Datum, EncodedTextChunk, ModelInput, TensorData


def _datum(weights: list[float]) -> Datum:
    n = len(weights)
    return Datum(
        model_input=ModelInput(chunks=(EncodedTextChunk(tokens=list(range(1, n + 1))),)),
        loss_fn_inputs={
            "target_tokens": TensorData.from_numpy(np.arange(2, n + 2, dtype=np.int64)),
            "weights": TensorData.from_numpy(np.asarray(weights, dtype=np.float32)),
        },
    )


def _batch(seed: int = 0) -> tuple[list[Datum], list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    datums, logprobs = [], []
    for n in (4, 5, 3, 6, 5, 4):
        w = [0.0] * (n // 2) + [1.0] * (n - n // 2)
        datums.append(_datum(w))
        logprobs.append(rng.normal(-2.0, 1.0, size=n).astype(np.float32))
    reference = rng.normal(-5.0, 1.0, size=(3, 2))
    return datums, logprobs, reference


def _expected_loss(datums, logprobs, reference, beta: float) -> float:  # type: ignore[no-untyped-def]
    total = 0.0
    for i in range(len(datums) // 2):
        s = [
            float(
                np.dot(datums[2 * i + k].loss_fn_inputs["weights"].to_numpy(), logprobs[2 * i + k])
            )
            for k in (0, 1)
        ]
        m = (s[0] - reference[i, 0]) - (s[1] - reference[i, 1])
        total += -math.log(1.0 / (1.0 + math.exp(-beta * m)))
    return total / (len(datums) // 2)


def test_loss_value_matches_the_formula() -> None:
    datums, logprobs, reference = _batch()
    loss, _, metrics = dpo_loss(datums, logprobs, reference, 0.1)
    assert loss == pytest.approx(_expected_loss(datums, logprobs, reference, 0.1), rel=1e-6)
    assert metrics["dpo/loss"] == loss


@pytest.mark.parametrize("beta", [0.1, 1.0, 3.0])
def test_gradient_matches_finite_differences(beta: float) -> None:
    datums, logprobs, reference = _batch(1)
    _, grads, _ = dpo_loss(datums, logprobs, reference, beta)
    h = 1e-4
    for d, array in enumerate(logprobs):
        assert grads[d].shape == array.shape
        assert grads[d].dtype == np.float32
        for t in range(array.shape[0]):
            plus = [a.astype(np.float64).copy() for a in logprobs]
            minus = [a.astype(np.float64).copy() for a in logprobs]
            plus[d][t] += h
            minus[d][t] -= h
            numeric = (
                _expected_loss(datums, plus, reference, beta)
                - _expected_loss(datums, minus, reference, beta)
            ) / (2 * h)
            assert grads[d][t] == pytest.approx(numeric, abs=1e-5)
    # Masked (weight 0) positions get no gradient; chosen pushed up, rejected down.
    assert grads[0][0] == 0.0
    assert grads[0][-1] < 0.0 < grads[1][-1]


def test_beta_scales_rewards_and_margin() -> None:
    datums, logprobs, reference = _batch(2)
    _, _, small = dpo_loss(datums, logprobs, reference, 0.1)
    _, _, large = dpo_loss(datums, logprobs, reference, 0.5)
    for key in ("dpo/margin", "dpo/chosen_reward", "dpo/rejected_reward"):
        assert large[key] == pytest.approx(5 * small[key])
    assert large["dpo/accuracy"] == small["dpo/accuracy"]
    assert small["dpo/margin"] == pytest.approx(
        small["dpo/chosen_reward"] - small["dpo/rejected_reward"]
    )


def test_accuracy_and_margin_metrics() -> None:
    datums = [_datum([1.0, 1.0]) for _ in range(4)]
    # Pair 0: Δc = +1, Δr = -1 (right); pair 1: Δc = -2, Δr = 0 (wrong).
    logprobs = [
        np.array(v, dtype=np.float32) for v in ([0.5, 0.5], [-0.5, -0.5], [-1.0, -1.0], [0.0, 0.0])
    ]
    _, _, metrics = dpo_loss(datums, logprobs, np.zeros((2, 2)), 1.0)
    assert metrics["dpo/accuracy"] == 0.5
    assert metrics["dpo/margin"] == pytest.approx(((1 - -1) + (-2 - 0)) / 2)
    assert metrics["dpo/chosen_reward"] == pytest.approx((1 - 2) / 2)
    assert metrics["dpo/rejected_reward"] == pytest.approx((-1 + 0) / 2)
    assert metrics["num_pairs"] == 2.0


def test_ties_at_the_reference_give_log2_and_no_accuracy() -> None:
    datums, logprobs, _ = _batch(3)
    sums = np.array(
        [
            float(
                np.dot(
                    d.loss_fn_inputs["weights"].to_numpy().astype(np.float64), lp.astype(np.float64)
                )
            )
            for d, lp in zip(datums, logprobs, strict=True)
        ]
    ).reshape(-1, 2)
    loss, _, metrics = make_dpo_loss_fn(sums, 0.1)(datums, logprobs)
    assert loss == pytest.approx(math.log(2.0), abs=1e-6)
    assert metrics["dpo/accuracy"] == 0.0


def test_extreme_margins_stay_finite() -> None:
    datums = [_datum([1.0]) for _ in range(4)]
    logprobs = [np.array([v], dtype=np.float32) for v in (1e4, -1e4, -1e4, 1e4)]
    loss, grads, _ = dpo_loss(datums, logprobs, np.zeros((2, 2)), 1.0)
    assert math.isfinite(loss)
    assert loss == pytest.approx(1e4, rel=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert grads[0][0] == 0.0
    assert grads[2][0] == pytest.approx(-0.5)
