"""Built-in and custom losses of the local torch engine against direct torch computations.

Each test runs the client on a batch of datums of different lengths (so padding is
involved), and recomputes the reference formula of ``reference/tinker_cookbook.md`` §5.1
with plain autograd on an untouched copy of the same model, one datum at a time.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crucible_train.adapters.local_torch.losses import (  # noqa: E402
    LOSS_CONFIG_DEFAULTS,
    resolve_loss_config,
)
from crucible_train.adapters.local_torch.training_client import (  # noqa: E402
    LocalTorchTrainingClient,
)
from crucible_train.errors import ConfigurationError, TrainingClientError  # noqa: E402
from crucible_train.types import Datum, ModelInput  # noqa: E402
from tiny_runs import TINY_ENGINE  # noqa: E402

pytestmark = pytest.mark.torch

TINY = {**TINY_ENGINE, "max_seq_length": 64}
LENGTHS = (7, 4, 9)
TIMEOUT = 60


@pytest.fixture
def client(tmp_path):
    with LocalTorchTrainingClient(**TINY, checkpoint_dir=str(tmp_path)) as built:
        yield built


def _tokens(seed: int, length: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], length + 1)


def _reference_logprobs(model, tokens: np.ndarray) -> torch.Tensor:
    """log p(t[i+1] | t[:i+1]) for one unpadded sequence, with autograd."""
    ids = torch.tensor(tokens[:-1])[None]
    logits = model(input_ids=ids).logits[0].float()
    targets = torch.tensor(tokens[1:])
    return torch.log_softmax(logits, dim=-1)[torch.arange(len(targets)), targets]


def _grads(model) -> dict[str, torch.Tensor]:
    return {
        name: p.grad.clone()
        for name, p in model.named_parameters()
        if p.requires_grad and p.grad is not None
    }


def _assert_same_grads(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(actual[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _reference_loss(name, logp, inputs, config):
    """The §5.1 formulas, written out again independently of the adapter's code."""
    if name == "cross_entropy":
        return -(inputs["weights"] * logp).sum()
    q, adv = inputs["logprobs"], inputs["advantages"]
    ratio = torch.exp(logp - q)
    if name == "importance_sampling":
        return -(ratio * adv).sum()
    if name == "ppo":
        lo, hi = config["clip_low_threshold"], config["clip_high_threshold"]
        return -torch.min(ratio * adv, torch.clamp(ratio, lo, hi) * adv).sum()
    if name == "cispo":
        lo, hi = config["clip_low_threshold"], config["clip_high_threshold"]
        return -(torch.clamp(ratio, lo, hi).detach() * logp * adv).sum()
    assert name == "dro"
    return -(logp * adv - 0.5 * config["beta"] * (logp - q) ** 2).sum()


CONFIGS = {
    "cross_entropy": None,
    "importance_sampling": None,
    "ppo": {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1},
    "cispo": {"clip_low_threshold": 0.85, "clip_high_threshold": 1.15},
    "dro": {"beta": 0.3},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_builtin_loss_gradient_matches_the_reference_formula(client, name):
    reference = copy.deepcopy(client.model)
    rng = np.random.default_rng(1)
    sequences = [_tokens(i, n) for i, n in enumerate(LENGTHS)]
    # Sampler logprobs near the learner's so that ratios land on both sides of the clip range.
    learner = [_reference_logprobs(reference, s).detach().numpy() for s in sequences]
    datums, inputs = [], []
    for seq, lp in zip(sequences, learner, strict=True):
        n = len(seq) - 1
        if name == "cross_entropy":
            extra = {"weights": rng.uniform(0, 2, n).astype(np.float32)}
        else:
            extra = {
                "logprobs": (lp + rng.normal(0, 0.3, n)).astype(np.float32),
                "advantages": rng.normal(0, 1, n).astype(np.float32),
            }
        datums.append(
            Datum(
                model_input=ModelInput.from_ints(seq[:-1].tolist()),
                loss_fn_inputs={"target_tokens": seq[1:], **extra},
            )
        )
        inputs.append({key: torch.tensor(value) for key, value in extra.items()})

    output = client.forward_backward(datums, name, CONFIGS[name]).result(TIMEOUT)

    config = resolve_loss_config(name, CONFIGS[name])
    total = torch.zeros(())
    for seq, extra, out in zip(sequences, inputs, output.loss_fn_outputs, strict=True):
        logp = _reference_logprobs(reference, seq)
        loss = _reference_loss(name, logp, extra, config)
        total = total + loss
        np.testing.assert_allclose(out["logprobs"].to_numpy(), logp.detach(), atol=1e-5)
        assert out["elementwise_loss"].shape == (len(seq) - 1,)
        assert float(out["elementwise_loss"].to_numpy().sum()) == pytest.approx(
            float(loss.detach()), rel=1e-4, abs=1e-5
        )
    total.backward()
    _assert_same_grads(_grads(client.model), _grads(reference))
    assert output.metrics["loss:sum"] == pytest.approx(float(total.detach()), rel=1e-4, abs=1e-5)
    assert output.metrics["tokens:sum"] == sum(LENGTHS)
    if name in ("ppo", "cispo"):
        assert 0 < output.metrics["clip_fraction:mean"] < 1  # both branches exercised


def test_cross_entropy_with_k_targets_per_position(client):
    reference = copy.deepcopy(client.model)
    rng = np.random.default_rng(2)
    seq = _tokens(3, 6)
    targets = rng.integers(0, TINY["vocab_size"], (6, 3))
    weights = rng.uniform(0, 1, (6, 3)).astype(np.float32)
    datum = Datum(
        model_input=ModelInput.from_ints(seq[:-1].tolist()),
        loss_fn_inputs={"target_tokens": targets, "weights": weights},
    )
    output = client.forward_backward([datum], "cross_entropy").result(TIMEOUT)
    logits = reference(input_ids=torch.tensor(seq[:-1])[None]).logits[0]
    logp = torch.log_softmax(logits, -1).gather(1, torch.tensor(targets))
    loss = -(torch.tensor(weights) * logp).sum()
    loss.backward()
    assert output.loss_fn_outputs[0]["logprobs"].shape == (6, 3)
    np.testing.assert_allclose(output.loss_fn_outputs[0]["logprobs"].to_numpy(), logp.detach())
    assert output.metrics["loss:sum"] == pytest.approx(float(loss.detach()), rel=1e-5)
    _assert_same_grads(_grads(client.model), _grads(reference))


def test_default_options_are_documented_values():
    assert resolve_loss_config("ppo", None) == {
        "clip_low_threshold": 0.8,
        "clip_high_threshold": 1.2,
    }
    assert resolve_loss_config("cispo", {"clip_high_threshold": 2}) == {
        "clip_low_threshold": 0.8,
        "clip_high_threshold": 2.0,
    }
    assert resolve_loss_config("dro", None) == {"beta": 0.05}
    assert set(LOSS_CONFIG_DEFAULTS) == set(CONFIGS)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("ppo", {"clip_lo": 0.5}, "'clip_lo' is not an option of ppo; valid: clip_low"),
        ("cross_entropy", {"beta": 1.0}, "valid: none"),
        ("ppo", {"clip_low_threshold": 1.5}, "0 <= clip_low_threshold <= clip_high_threshold"),
        ("dro", {"beta": float("nan")}, "expected a finite number"),
        ("dro", {"beta": -1.0}, "beta must be >= 0"),
    ],
)
def test_bad_loss_options_are_refused(name, config, message):
    with pytest.raises(ConfigurationError, match=message):
        resolve_loss_config(name, config)


# --- custom losses ------------------------------------------------------------------------


def _pair(seed: int = 0) -> tuple[list[Datum], list[np.ndarray]]:
    sequences = [_tokens(seed, 6), _tokens(seed + 1, 9)]
    datums = [
        Datum(
            model_input=ModelInput.from_ints(s[:-1].tolist()),
            loss_fn_inputs={"target_tokens": s[1:], "weights": np.ones(len(s) - 1, np.float32)},
        )
        for s in sequences
    ]
    return datums, sequences


BETA = 0.5


def _dpo_numpy(datums, logprobs):
    """A DPO-style pairwise loss in numpy: -log sigmoid(beta * (S_chosen - S_rejected))."""
    chosen, rejected = (float(lp.sum()) for lp in logprobs)
    margin = BETA * (chosen - rejected)
    loss = math.log1p(math.exp(-margin))
    slope = -BETA / (1 + math.exp(margin))  # d loss / d S_chosen
    grads = [np.full_like(logprobs[0], slope), np.full_like(logprobs[1], -slope)]
    return loss, grads, {"margin": margin}


def test_custom_loss_gradient_matches_autograd_of_the_same_loss(client):
    reference = copy.deepcopy(client.model)
    datums, sequences = _pair()
    output = client.forward_backward_custom(datums, _dpo_numpy).result(TIMEOUT)

    chosen, rejected = (_reference_logprobs(reference, s) for s in sequences)
    margin = BETA * (chosen.sum() - rejected.sum())
    loss = -torch.nn.functional.logsigmoid(margin)
    loss.backward()
    _assert_same_grads(_grads(client.model), _grads(reference))
    assert output.metrics["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert output.metrics["margin"] == pytest.approx(float(margin.detach()), rel=1e-5)
    assert set(output.metrics) == {"loss", "margin"}
    np.testing.assert_allclose(output.loss_fn_outputs[1]["logprobs"].to_numpy(), rejected.detach())


def test_custom_loss_receives_float32_copies_per_datum(client):
    datums, _ = _pair()
    seen = []

    def loss_fn(given, logprobs):
        seen.append((list(given), [(lp.dtype, lp.shape) for lp in logprobs]))
        for lp in logprobs:
            lp[:] = 0.0  # must not change what the client returns
        return 0.0, [np.zeros_like(lp) for lp in logprobs], {}

    output = client.forward_backward_custom(datums, loss_fn).result(TIMEOUT)
    assert seen == [(datums, [(np.float32, (6,)), (np.float32, (9,))])]
    assert all(out["logprobs"].to_numpy().max() < 0 for out in output.loss_fn_outputs)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (lambda lps: (0.0, [np.zeros(3, np.float32), np.zeros_like(lps[1])], {}), "datum 0"),
        (lambda lps: (0.0, [np.zeros_like(lps[0])], {}), "1 gradient arrays for 2 datums"),
        (
            lambda lps: (0.0, [np.zeros_like(lps[0]), np.full_like(lps[1], np.nan)], {}),
            "gradient for datum 1 has a non-finite value",
        ),
        (lambda lps: (0.0, [np.zeros_like(lp) for lp in lps]), r"\(loss, grads, metrics\)"),
        (lambda lps: ("x", [np.zeros_like(lp) for lp in lps], {}), "loss must be a number"),
        (lambda lps: (0.0, [np.zeros_like(lp) for lp in lps], {"m": "x"}), "metric 'm'"),
    ],
)
def test_bad_custom_loss_results_are_refused_and_leave_no_gradients(client, result, message):
    datums, _ = _pair()
    future = client.forward_backward_custom(datums, lambda _d, lps: result(lps))
    with pytest.raises(ConfigurationError, match=message):
        future.result(TIMEOUT)
    assert _grads(client.model) == {}


def test_a_raising_custom_loss_fails_typed(client):
    def broken(_datums, _logprobs):
        raise ZeroDivisionError("boom")

    future = client.forward_backward_custom(_pair()[0], broken)
    with pytest.raises(TrainingClientError, match="ZeroDivisionError: boom") as info:
        future.result(TIMEOUT)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert client.forward(_pair()[0], "cross_entropy").result(TIMEOUT)  # still working
