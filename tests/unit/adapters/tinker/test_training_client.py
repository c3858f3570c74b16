"""TinkerTrainingClient against the in-process fake Tinker server, through the real SDK.

Runs with whichever SDK is installed: 0.38 in the main environment, 0.16.1 in the
self-hosted (skyrl-tx) environment. The assertions are on the requests the adapter
causes, normalised by the fake (0.38's protobuf ``forward_backward`` is decoded to the
0.16 JSON shape).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

tinker = pytest.importorskip("tinker")

from crucible_train.adapters.tinker._sdk import is_deprecated  # noqa: E402
from crucible_train.adapters.tinker.training_client import TinkerTrainingClient  # noqa: E402
from crucible_train.errors import (  # noqa: E402
    BackendRequestError,
    ConfigurationError,
    InvalidDataError,
    SamplingClientError,
    TrainingClientError,
)
from crucible_train.ports.sampling import SamplingClient  # noqa: E402
from crucible_train.ports.training import TrainingClient  # noqa: E402
from crucible_train.types import AdamParams, Datum, ModelInput  # noqa: E402
from servers.fake_tinker import SKYRL_LOSSES, FakeTinker, serve  # noqa: E402

TIMEOUT = 30
LEGACY = not is_deprecated(tinker.TrainingClient.load_state)
"""0.16.x: load_state is current; 0.38: replaced by create_training_client_from_state."""

DATUM = Datum(
    model_input=ModelInput.from_ints([1, 2, 3]),
    loss_fn_inputs={
        "target_tokens": np.array([2, 3, 4]),
        "weights": np.array([1.0, 0.5, 0.0], dtype=np.float32),
    },
)
POLICY = Datum(
    model_input=ModelInput.from_ints([5, 6]),
    loss_fn_inputs={
        "target_tokens": np.array([6, 7]),
        "logprobs": np.array([-1.0, -2.0], dtype=np.float32),
        "advantages": np.array([0.5, -0.5], dtype=np.float32),
    },
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from serve(monkeypatch)


@pytest.fixture
def make(fake: FakeTinker) -> Any:
    made: list[TinkerTrainingClient] = []

    def build(**overrides: Any) -> TinkerTrainingClient:
        client = TinkerTrainingClient(**fake.settings(**overrides))
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def _input(body: dict[str, Any]) -> dict[str, Any]:
    # 0.16 JSON names a forward's payload forward_input; the fake decodes 0.38's proto
    # (and 0.16's forward_backward) as forward_backward_input.
    result: dict[str, Any] = body.get("forward_backward_input") or body["forward_input"]
    return result


def _data(tensor: dict[str, Any]) -> list[Any]:
    return list(tensor["data"])


def test_is_a_training_client_that_refuses_pickling_and_hides_the_key(make):
    client = make(api_key="tml-very-secret-key")
    assert isinstance(client, TrainingClient)
    assert "tml-very-secret-key" not in repr(client)
    assert "tml-very-secret-key" not in repr(client.settings)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(client)


def test_construction_sends_nothing_and_the_first_call_creates_the_lora_model(fake, make):
    client = make(lora_rank=8, seed=3, train_unembed=False)
    assert fake.requests == []
    client.forward([DATUM], "cross_entropy").result(TIMEOUT)
    (body,) = fake.bodies("create_model")
    assert body["base_model"] == "fake-base"
    lora = body["lora_config"]
    assert (lora["rank"], lora["seed"], lora["train_unembed"]) == (8, 3, False)
    assert lora["train_mlp"] is True
    assert lora["train_attn"] is True
    assert fake.ops().count("create_session") == 1


def test_forward_backward_sends_our_datums_loss_and_config(fake, make):
    client = make()
    output = client.forward_backward([DATUM], "cross_entropy", {"clip_low_threshold": 0.5}).result(
        TIMEOUT
    )
    (body,) = fake.bodies("forward_backward")
    request = _input(body)
    assert request["loss_fn"] == "cross_entropy"
    assert request["loss_fn_config"] == {"clip_low_threshold": 0.5}
    (datum,) = request["data"]
    assert [t for chunk in datum["model_input"]["chunks"] for t in chunk["tokens"]] == [1, 2, 3]
    inputs = datum["loss_fn_inputs"]
    assert (_data(inputs["target_tokens"]), inputs["target_tokens"]["dtype"]) == (
        [2, 3, 4],
        "int64",
    )
    assert (_data(inputs["weights"]), inputs["weights"]["dtype"]) == ([1.0, 0.5, 0.0], "float32")
    # Our result: per-datum float32 tensors and float metrics, as the fake computed them.
    (out,) = output.loss_fn_outputs
    assert out["logprobs"].dtype == "float32"
    assert out["logprobs"].shape == (3,)
    assert out["elementwise_loss"].shape == (3,)
    expected = -(np.array([1.0, 0.5, 0.0]) * out["logprobs"].to_numpy()).sum()
    assert output.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5)


def test_policy_losses_send_logprobs_and_advantages(fake, make):
    client = make()
    client.forward_backward([POLICY], "ppo", {"clip_high_threshold": 1.2}).result(TIMEOUT)
    request = _input(fake.bodies("forward_backward")[0])
    assert request["loss_fn"] == "ppo"
    inputs = request["data"][0]["loss_fn_inputs"]
    assert _data(inputs["logprobs"]) == [-1.0, -2.0]
    assert _data(inputs["advantages"]) == [0.5, -0.5]


def test_forward_sends_a_forward_pass_that_leaves_the_weights_alone(fake, make):
    client = make()
    first = client.forward([DATUM], "cross_entropy")
    client.optim_step(AdamParams(learning_rate=1.0))
    second = client.forward([DATUM], "cross_entropy")
    assert (
        first.result(TIMEOUT).loss_fn_outputs[0]["logprobs"]
        == (second.result(TIMEOUT).loss_fn_outputs[0]["logprobs"])
    )
    assert fake.ops().count("forward") == 2
    assert "forward_backward" not in fake.ops()


def test_optim_step_sends_every_adam_parameter(fake, make):
    client = make()
    params = AdamParams(
        learning_rate=0.01, beta1=0.8, beta2=0.9, eps=1e-8, weight_decay=0.1, grad_clip_norm=1.0
    )
    response = client.optim_step(params).result(TIMEOUT)
    assert response.metrics == {}
    (body,) = fake.bodies("optim_step")
    sent = body["adam_params"]
    assert {key: sent[key] for key in ("learning_rate", "beta1", "beta2", "eps")} == {
        "learning_rate": 0.01,
        "beta1": 0.8,
        "beta2": 0.9,
        "eps": 1e-8,
    }
    assert (sent["weight_decay"], sent["grad_clip_norm"]) == (0.1, 1.0)


def test_training_moves_the_fake_model(make):
    client = make()
    before = client.forward([DATUM], "cross_entropy")
    client.forward_backward([DATUM], "cross_entropy")
    client.optim_step(AdamParams(learning_rate=0.5))
    after = client.forward([DATUM], "cross_entropy")
    lp_before = before.result(TIMEOUT).loss_fn_outputs[0]["logprobs"].to_numpy()
    lp_after = after.result(TIMEOUT).loss_fn_outputs[0]["logprobs"].to_numpy()
    assert lp_after[0] > lp_before[0]  # weight 1: its target got likelier


def test_custom_loss_is_a_forward_then_a_weighted_backward_before_the_next_step(fake, make):
    client = make()
    seen: list[list[np.ndarray]] = []

    def loss(datums, logprobs):
        seen.append([np.array(lp) for lp in logprobs])
        grads = [np.full_like(lp, 2.0) for lp in logprobs]
        return float(sum(lp.sum() for lp in logprobs)), grads, {"pairs": 1.0}

    custom = client.forward_backward_custom([DATUM], loss)
    step = client.optim_step(AdamParams(learning_rate=0.1))
    output = custom.result(TIMEOUT)
    step.result(TIMEOUT)
    work = [op for op in fake.ops() if op in ("forward", "forward_backward", "optim_step")]
    assert work == ["forward", "forward_backward", "optim_step"]
    (logprobs,) = seen[0]
    assert logprobs.dtype == np.float32
    assert logprobs.shape == (3,)
    backward = _input(fake.bodies("forward_backward")[0])
    assert backward["loss_fn"] == "cross_entropy"
    inputs = backward["data"][0]["loss_fn_inputs"]
    assert _data(inputs["target_tokens"]) == [2, 3, 4]
    assert _data(inputs["weights"]) == [-2.0, -2.0, -2.0]  # weights = -d loss / d logprob
    assert output.metrics == {"pairs": 1.0, "loss": pytest.approx(float(logprobs.sum()))}
    assert output.loss_fn_outputs[0]["logprobs"].to_numpy() == pytest.approx(logprobs)


def test_a_failing_custom_loss_fails_its_future_and_sends_no_backward(fake, make):
    client = make()

    def broken(datums, logprobs):
        raise ZeroDivisionError("boom")

    def wrong_shape(datums, logprobs):
        return 0.0, [np.zeros(7, dtype=np.float32)], {}

    first = client.forward_backward_custom([DATUM], broken)
    second = client.forward_backward_custom([DATUM], wrong_shape)
    assert isinstance(first.exception(TIMEOUT), TrainingClientError)
    assert "boom" in str(first.exception())
    assert isinstance(second.exception(TIMEOUT), InvalidDataError)
    assert "forward_backward" not in fake.ops()
    assert client.forward([DATUM], "cross_entropy").result(TIMEOUT) is not None


def test_bad_input_fails_typed_without_a_request(fake, make):
    client = make()
    unknown = client.forward_backward([DATUM], "no_such_loss")  # type: ignore[arg-type]
    missing = client.forward_backward([DATUM], "importance_sampling")
    no_targets = client.forward_backward_custom(
        [Datum(model_input=ModelInput.from_ints([1]))], lambda d, lp: (0.0, lp, {})
    )
    assert isinstance(unknown.exception(TIMEOUT), ConfigurationError)
    assert "valid: cross_entropy" in str(unknown.exception())
    assert isinstance(missing.exception(TIMEOUT), ConfigurationError)
    assert "missing logprobs, advantages" in str(missing.exception())
    assert isinstance(no_targets.exception(TIMEOUT), ConfigurationError)
    assert fake.requests == []


def test_a_loss_the_server_does_not_support_is_a_request_error_with_status(make, fake):
    fake.supported_losses = SKYRL_LOSSES
    client = make()
    failed = client.forward_backward([POLICY], "cispo").exception(TIMEOUT)
    assert isinstance(failed, BackendRequestError)
    assert isinstance(failed, TrainingClientError)
    assert isinstance(failed, SamplingClientError)
    assert failed.status == 422
    assert "Input should be" in str(failed)
    # The client keeps working after a refused request.
    assert client.forward_backward([POLICY], "ppo").result(TIMEOUT).loss_fn_outputs


def test_save_and_load_state_round_trip_through_tinker_paths(fake, make):
    client = make()
    client.forward_backward([DATUM], "cross_entropy")
    client.optim_step(AdamParams(learning_rate=0.5))
    saved = client.forward([DATUM], "cross_entropy")
    path = client.save_state("ckpt-1").result(TIMEOUT)
    assert path.startswith("tinker://")
    assert path.endswith("/weights/ckpt-1")
    assert fake.bodies("save_weights")[0]["path"] == "ckpt-1"
    client.forward_backward([DATUM], "cross_entropy")
    client.optim_step(AdamParams(learning_rate=0.5))
    assert client.load_state(path).result(TIMEOUT) is None
    restored = client.forward([DATUM], "cross_entropy").result(TIMEOUT)
    assert restored.loss_fn_outputs[0]["logprobs"] == saved.result().loss_fn_outputs[0]["logprobs"]
    (load,) = fake.bodies("load_weights")
    assert (load["path"], load["optimizer"]) == (path, True)
    if LEGACY:  # 0.16: load_state_with_optimizer on the same model
        assert load["model_id"] in fake.models
    else:  # 0.38: a new model created from the state, which later calls use
        assert load.get("model_id") is None
        assert fake.bodies("forward")[-1]["model_id"].endswith(f":train:{load['model_seq_id']}")


def test_a_missing_state_fails_typed_and_the_client_keeps_working(make):
    client = make()
    failed = client.load_state("tinker://nobody/weights/none").exception(TIMEOUT)
    assert isinstance(failed, BackendRequestError)
    assert "checkpoint not found" in str(failed)
    assert client.forward([DATUM], "cross_entropy").result(TIMEOUT) is not None


def test_model_path_starts_from_the_saved_state(fake, make):
    first = make()
    first.forward_backward([DATUM], "cross_entropy")
    first.optim_step(AdamParams(learning_rate=0.5))
    expected = first.forward([DATUM], "cross_entropy").result(TIMEOUT)
    path = first.save_state("start").result(TIMEOUT)
    second = make(model_path=path)
    got = second.forward([DATUM], "cross_entropy").result(TIMEOUT)
    assert got.loss_fn_outputs[0]["logprobs"] == expected.loss_fn_outputs[0]["logprobs"]
    load = fake.bodies("load_weights")[-1]
    assert load["path"] == path
    assert load["optimizer"] is False  # weights only, as the SDK's from-state does


def test_sampler_weights_make_a_sampling_client_on_the_same_session(fake, make):
    client = make()
    path = client.save_weights_for_sampler("for-sampling").result(TIMEOUT)
    assert path.startswith("tinker://")
    assert path.endswith("/for-sampling")
    sampler = client.create_sampling_client(path)
    try:
        assert isinstance(sampler, SamplingClient)
        values = sampler.compute_logprobs(ModelInput.from_ints([1, 2, 3])).result(TIMEOUT)
        learner = client.forward([DATUM], "cross_entropy").result(TIMEOUT)
        assert values[0] is None
        assert values[1:] == pytest.approx(
            learner.loss_fn_outputs[0]["logprobs"].tolist()[:2], abs=1e-5
        )
        assert fake.bodies("create_sampling_session")[0]["model_path"] == path
        assert fake.ops().count("create_session") == 1  # the sampler reused the session
    finally:
        sampler.close()
    with pytest.raises(ConfigurationError, match="tinker://"):
        client.create_sampling_client("/local/dir")


def test_futures_resolve_in_submission_order(make):
    client = make()
    done: list[int] = []
    futures = [
        client.forward([DATUM], "cross_entropy"),
        client.forward_backward([DATUM], "cross_entropy"),
        client.optim_step(AdamParams()),
        client.save_state("a"),
        client.forward([DATUM], "cross_entropy"),
    ]
    for index, future in enumerate(futures):
        future.add_done_callback(lambda _f, index=index: done.append(index))
    for future in futures:
        future.result(TIMEOUT)
    assert done == [0, 1, 2, 3, 4]


def test_a_reused_save_name_gets_a_suffix_because_saved_weights_cannot_be_overwritten(fake, make):
    client = make()
    first = client.save_weights_for_sampler("eval").result(TIMEOUT)
    second = client.save_weights_for_sampler("eval").result(TIMEOUT)
    state = client.save_state("eval").result(TIMEOUT)  # names are counted per kind
    assert first.endswith("/eval")
    assert second.endswith("/eval-2")
    assert state.endswith("/eval")
    assert first != second


@pytest.mark.parametrize("pipeline", [True, False])
def test_without_pipelining_a_call_is_sent_only_after_the_previous_result(
    fake, make, pipeline: bool
):
    import time

    client = make(pipeline=pipeline, future_timeout_s=1.0)
    client.forward([DATUM], "cross_entropy").result(TIMEOUT)  # connected, model created
    fake.hang.add("forward_backward")
    stuck = client.forward_backward([DATUM], "cross_entropy")
    after = client.forward([DATUM], "cross_entropy")
    time.sleep(0.5)
    forwards_sent = fake.ops().count("forward")
    assert forwards_sent == (2 if pipeline else 1)
    with pytest.raises(TrainingClientError):
        stuck.result(TIMEOUT)  # times out after future_timeout_s
    fake.release()
    after.result(TIMEOUT)
    assert fake.ops().count("forward") == 2
