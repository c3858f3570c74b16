"""LocalTorchTrainingClient: optimizer parity, determinism, resumable state, call ordering
and the refusal of bad input, on tiny models."""

from __future__ import annotations

import copy
import json
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crucible_train.adapters.local_torch.training_client import (  # noqa: E402
    LocalTorchTrainingClient,
)
from crucible_train.errors import (  # noqa: E402
    ConfigurationError,
    InvalidDataError,
    TrainingClientError,
)
from crucible_train.types import (  # noqa: E402
    AdamParams,
    Datum,
    ImageChunk,
    ModelInput,
    TensorData,
)
from tiny_runs import TINY_ENGINE  # noqa: E402

pytestmark = pytest.mark.torch

TINY = dict(TINY_ENGINE)
TIMEOUT = 60
STEP = AdamParams(learning_rate=1e-2, beta1=0.9, beta2=0.95, eps=1e-8)


def _client(tmp_path: Path, **overrides) -> LocalTorchTrainingClient:
    return LocalTorchTrainingClient(
        **{**TINY, **overrides}, checkpoint_dir=str(tmp_path / "checkpoints")
    )


@pytest.fixture
def client(tmp_path):
    with _client(tmp_path) as built:
        yield built


def _sft(seed: int, length: int, vocab: int = 64) -> Datum:
    tokens = np.random.default_rng(seed).integers(0, vocab, length + 1)
    return Datum(
        model_input=ModelInput.from_ints(tokens[:-1].tolist()),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": np.ones(length, np.float32)},
    )


def _rl(seed: int, length: int) -> Datum:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 64, length + 1)
    return Datum(
        model_input=ModelInput.from_ints(tokens[:-1].tolist()),
        loss_fn_inputs={
            "target_tokens": tokens[1:],
            "logprobs": rng.uniform(-5, -1, length).astype(np.float32),
            "advantages": rng.normal(0, 1, length).astype(np.float32),
        },
    )


BATCH = [_sft(0, 9), _sft(1, 5), _sft(2, 12)]


def _weights(client: LocalTorchTrainingClient) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in client.model.named_parameters()}


def _assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _train(client: LocalTorchTrainingClient, steps: int, first: int = 0) -> None:
    for step in range(first, first + steps):
        client.forward_backward([_sft(100 + step, 8), _sft(200 + step, 5)], "cross_entropy")
        client.optim_step(STEP)
    client.forward([BATCH[0]], "cross_entropy").result(TIMEOUT)  # wait for the queue


# --- optimizer ------------------------------------------------------------------------------


def test_optim_step_matches_torch_adamw_with_weight_decay_and_clipping(client):
    reference = copy.deepcopy(client.model)
    ref_params = [p for p in reference.parameters() if p.requires_grad]
    ref_opt = torch.optim.AdamW(ref_params, lr=0.0)
    schedule = [
        AdamParams(learning_rate=1e-2, weight_decay=0.1, grad_clip_norm=0.5, eps=1e-8),
        AdamParams(learning_rate=5e-3, beta1=0.8, beta2=0.99, weight_decay=0.0),
        AdamParams(learning_rate=2e-3, weight_decay=0.05, grad_clip_norm=100.0),
        AdamParams(learning_rate=1e-3, eps=1e-6, weight_decay=0.2, grad_clip_norm=0.1),
    ]
    for index, params in enumerate(schedule):
        client.forward_backward([_sft(index, 7), _sft(index + 10, 4)], "cross_entropy").result(
            TIMEOUT
        )
        grads = [p.grad.clone() for p in client.model.parameters() if p.requires_grad]
        metrics = client.optim_step(params).result(TIMEOUT).metrics

        for p, grad in zip(ref_params, grads, strict=True):
            p.grad = grad
        expected_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        if params.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(ref_params, params.grad_clip_norm)
        for group in ref_opt.param_groups:
            group.update(
                lr=params.learning_rate,
                betas=(params.beta1, params.beta2),
                eps=params.eps,
                weight_decay=params.weight_decay,
            )
        ref_opt.step()
        ref_opt.zero_grad()

        assert metrics["grad_norm"] == pytest.approx(float(expected_norm), rel=1e-6)
        assert metrics["lr"] == params.learning_rate
        assert metrics["step"] == index + 1
        assert all(p.grad is None for p in client.model.parameters())
        _assert_bit_identical(
            _weights(client), {n: p.detach() for n, p in reference.named_parameters()}
        )


def test_clipping_bounds_the_update_and_reports_the_unclipped_norm(client):
    client.forward_backward(BATCH, "cross_entropy").result(TIMEOUT)
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in client.model.parameters()]).item())
    metrics = client.optim_step(AdamParams(learning_rate=0.0, grad_clip_norm=1e-3)).result()
    assert metrics.metrics["grad_norm"] == pytest.approx(norm, rel=1e-6)
    assert norm > 1e-3


def test_non_finite_gradients_skip_the_step(client):
    before = _weights(client)
    client.forward_backward(BATCH, "cross_entropy").result(TIMEOUT)
    next(iter(client.model.parameters())).grad[0, 0] = float("nan")
    with pytest.raises(TrainingClientError, match="gradient norm is nan; the step was skipped"):
        client.optim_step(STEP).result(TIMEOUT)
    _assert_bit_identical(_weights(client), before)
    assert client.step == 0
    assert client.optim_step(STEP).result(TIMEOUT).metrics["grad_norm"] == 0.0


# --- determinism and state ------------------------------------------------------------------


def test_same_seed_gives_identical_weights_after_training(tmp_path):
    with _client(tmp_path / "a", seed=7) as a, _client(tmp_path / "b", seed=7) as b:
        _assert_bit_identical(_weights(a), _weights(b))
        _train(a, 3)
        _train(b, 3)
        _assert_bit_identical(_weights(a), _weights(b))
    with _client(tmp_path / "c", seed=8) as c:
        assert not torch.equal(c.model.lm_head.weight, a.model.lm_head.weight)


def test_building_a_model_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with _client(tmp_path):
        assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_resuming_from_a_saved_state_is_bit_identical(tmp_path, lora):
    extra = {"lora_rank": 4, "lora_alpha": 8.0} if lora else {}
    with _client(tmp_path, **extra) as first:
        _train(first, 3)
        path = first.save_state("step-3").result(TIMEOUT)
        _train(first, 3, first=3)
        uninterrupted = _weights(first)
        assert first.step == 6
    with _client(tmp_path, **extra) as second:
        assert second.load_state(path).result(TIMEOUT) is None
        assert second.step == 3
        _train(second, 3, first=3)
        assert second.step == 6
        _assert_bit_identical(_weights(second), uninterrupted)


def test_state_directory_layout_and_manifest(client, tmp_path):
    _train(client, 1)
    path = Path(client.save_state("first").result(TIMEOUT))
    assert path == tmp_path / "checkpoints" / "first"
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json",
        "optimizer.safetensors",
        "rng.safetensors",
        "weights.safetensors",
    ]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["step"] == 1
    assert manifest["fingerprint"]["hidden_size"] == 32
    assert set(manifest["files"]) == {
        "weights.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
    }
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs
    # Saving again under the same name replaces the state.
    _train(client, 1)
    client.save_state("first").result(TIMEOUT)
    assert json.loads((path / "manifest.json").read_text())["step"] == 2


def test_lora_state_holds_only_the_adapters(tmp_path):
    from safetensors.torch import load_file

    with _client(tmp_path, lora_rank=2) as client:
        _train(client, 1)
        path = Path(client.save_state("lora").result(TIMEOUT))
    names = set(load_file(path / "weights.safetensors"))
    assert names
    assert all("lora_" in name for name in names)


def test_loading_restores_the_rng_state(client):
    path = client.save_state("rng").result(TIMEOUT)
    expected = torch.rand(4)  # the stream right after the save
    torch.rand(10)
    client.load_state(path).result(TIMEOUT)
    assert torch.equal(torch.rand(4), expected)


def test_load_state_of_a_missing_directory(client, tmp_path):
    with pytest.raises(ConfigurationError, match=r"no training state at .*not a directory"):
        client.load_state(str(tmp_path / "nowhere")).result(TIMEOUT)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"manifest\.json is missing"):
        client.load_state(str(tmp_path / "empty")).result(TIMEOUT)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_load_state_refuses_a_damaged_file_and_changes_nothing(client, damage):
    _train(client, 1)
    path = Path(client.save_state("s").result(TIMEOUT))
    _train(client, 1, first=1)
    before = _weights(client)
    target = path / "weights.safetensors"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
        message = "truncated or corrupted"
    elif damage == "flip":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
        message = "corrupted: its sha256"
    else:
        target.unlink()
        message = "incomplete: .*weights.safetensors is missing"
    with pytest.raises(TrainingClientError, match=message):
        client.load_state(str(path)).result(TIMEOUT)
    _assert_bit_identical(_weights(client), before)
    assert client.step == 2


def test_load_state_refuses_a_corrupted_manifest(client):
    path = Path(client.save_state("s").result(TIMEOUT))
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(TrainingClientError, match=r"manifest\.json is corrupted"):
        client.load_state(str(path)).result(TIMEOUT)


def test_load_state_names_what_differs_in_an_incompatible_checkpoint(tmp_path):
    with _client(tmp_path) as small:
        path = small.save_state("small").result(TIMEOUT)
    with (
        _client(tmp_path, hidden_size=48, lora_rank=2) as other,
        pytest.raises(ConfigurationError) as info,
    ):
        other.load_state(path).result(TIMEOUT)
    message = str(info.value)
    assert "belongs to a different model" in message
    assert "hidden_size 32 vs 48" in message
    assert "lora_rank 0 vs 2" in message


@pytest.mark.parametrize("name", ["", "a/b", "../x", ".hidden", " padded "])
def test_state_names_must_be_plain_directory_names(client, name):
    with pytest.raises(ConfigurationError, match="not a plain directory name"):
        client.save_state(name).result(TIMEOUT)
    with pytest.raises(ConfigurationError, match="not a plain directory name"):
        client.save_weights_for_sampler(name).result(TIMEOUT)


def test_weights_for_sampler_are_written_atomically_next_to_the_state(client, tmp_path):
    path = client.save_weights_for_sampler("final").result(TIMEOUT)
    assert Path(path) == tmp_path / "checkpoints" / "final-sampler"
    assert (Path(path) / "config.json").is_file()
    assert (Path(path) / "model.safetensors").is_file()
    assert not [p for p in Path(path).parent.iterdir() if p.name.startswith(".")]


# --- futures and ordering -------------------------------------------------------------------


def test_calls_return_at_once_and_run_in_submission_order(client):
    release = threading.Event()

    def blocking(_datums, logprobs):
        release.wait(TIMEOUT)
        return 0.0, [np.zeros_like(lp) for lp in logprobs], {}

    blocked = client.forward_backward_custom([BATCH[0]], blocking)
    futures: list[Future] = []
    for _ in range(4):
        futures.append(client.forward_backward(BATCH, "cross_entropy"))
        futures.append(client.optim_step(STEP))
    # The worker is stuck in the first call, so nothing after it has run yet.
    assert not blocked.done()
    assert not any(future.done() for future in futures)
    release.set()
    steps = [f.result(TIMEOUT).metrics["step"] for f in futures[1::2]]
    assert steps == [1.0, 2.0, 3.0, 4.0]
    assert blocked.result(TIMEOUT).metrics == {"loss": 0.0}


def test_a_cancelled_call_is_skipped(client):
    release = threading.Event()

    def blocking(_datums, logprobs):
        release.wait(TIMEOUT)
        return 0.0, [np.zeros_like(lp) for lp in logprobs], {}

    client.forward_backward_custom([BATCH[0]], blocking)
    skipped = client.forward_backward(BATCH, "cross_entropy")
    assert skipped.cancel()
    release.set()
    client.optim_step(STEP).result(TIMEOUT)
    assert client.step == 1
    assert skipped.cancelled()


def test_the_submitted_list_is_copied(client):
    datums = [BATCH[0]]
    future = client.forward(datums, "cross_entropy")
    datums.append(BATCH[1])
    assert len(future.result(TIMEOUT).loss_fn_outputs) == 1


def test_close_finishes_pending_calls_and_is_idempotent(tmp_path):
    client = _client(tmp_path)
    pending = [client.forward_backward(BATCH, "cross_entropy"), client.optim_step(STEP)]
    client.close()
    assert all(future.done() and future.exception() is None for future in pending)
    client.close()
    late = client.forward(BATCH, "cross_entropy")
    with pytest.raises(TrainingClientError, match="closed"):
        late.result(TIMEOUT)


# --- forward and batching -------------------------------------------------------------------


def test_forward_never_touches_gradients(client):
    client.forward(BATCH, "cross_entropy").result(TIMEOUT)
    assert all(p.grad is None for p in client.model.parameters())
    client.forward_backward(BATCH, "cross_entropy").result(TIMEOUT)
    grads = {n: p.grad.clone() for n, p in client.model.named_parameters()}
    for loss in ("cross_entropy", "importance_sampling", "ppo", "cispo", "dro"):
        datums = BATCH if loss == "cross_entropy" else [_rl(0, 6), _rl(1, 3)]
        output = client.forward(datums, loss).result(TIMEOUT)
        assert "loss:sum" in output.metrics
    for name, p in client.model.named_parameters():
        assert torch.equal(p.grad, grads[name]), name


def test_padded_batches_score_like_single_datums(client):
    batched = client.forward(BATCH, "cross_entropy").result(TIMEOUT)
    for datum, out in zip(BATCH, batched.loss_fn_outputs, strict=True):
        alone = client.forward([datum], "cross_entropy").result(TIMEOUT).loss_fn_outputs[0]
        assert out["logprobs"].shape == (datum.model_input.length,)
        assert out["logprobs"].dtype == "float32"
        np.testing.assert_allclose(out["logprobs"].to_numpy(), alone["logprobs"].to_numpy(), 1e-5)
        np.testing.assert_allclose(
            out["elementwise_loss"].to_numpy(), -out["logprobs"].to_numpy(), 1e-6
        )


def test_gradients_accumulate_over_calls(client):
    client.forward_backward([BATCH[0]], "cross_entropy").result(TIMEOUT)
    client.forward_backward([BATCH[1]], "cross_entropy").result(TIMEOUT)
    accumulated = {n: p.grad.clone() for n, p in client.model.named_parameters()}
    client.optim_step(AdamParams(learning_rate=0.0)).result(TIMEOUT)
    client.forward_backward(BATCH[:2], "cross_entropy").result(TIMEOUT)
    for name, p in client.model.named_parameters():
        torch.testing.assert_close(p.grad, accumulated[name], rtol=1e-5, atol=1e-7)


def test_metrics_of_builtin_losses(client):
    sft = client.forward(BATCH, "cross_entropy").result(TIMEOUT).metrics
    assert sft["tokens:sum"] == 26
    assert sft["weights:sum"] == 26
    rl = client.forward([_rl(0, 6), _rl(1, 3)], "ppo").result(TIMEOUT).metrics
    assert set(rl) == {
        "loss:sum",
        "tokens:sum",
        "action_tokens:sum",
        "ratio:mean",
        "clip_fraction:mean",
    }
    assert rl["action_tokens:sum"] == 9


# --- bad input ------------------------------------------------------------------------------


def _with_inputs(datum: Datum, **inputs) -> Datum:
    return Datum(model_input=datum.model_input, loss_fn_inputs={**datum.loss_fn_inputs, **inputs})


def _without(datum: Datum, key: str) -> Datum:
    kept = {k: v for k, v in datum.loss_fn_inputs.items() if k != key}
    return Datum(model_input=datum.model_input, loss_fn_inputs=kept)


def _forced(datum: Datum, **inputs) -> Datum:
    # Datum refuses a wrong length itself; bypass that to check the client's own guard.
    forced = Datum(model_input=datum.model_input, loss_fn_inputs=datum.loss_fn_inputs)
    updated = {**datum.loss_fn_inputs, **{k: TensorData.from_numpy(v) for k, v in inputs.items()}}
    object.__setattr__(forced, "loss_fn_inputs", updated)
    return forced


BAD_INPUTS = [
    pytest.param(
        BATCH,
        "mse",
        ConfigurationError,
        "unknown loss_fn 'mse'; valid: cross_entropy, importance_sampling, ppo, cispo, dro",
        id="unknown-loss",
    ),
    pytest.param(
        [BATCH[0], _without(BATCH[1], "weights")],
        "cross_entropy",
        ConfigurationError,
        "datum 1: loss_fn_inputs has no 'weights'; cross_entropy needs target_tokens, weights",
        id="missing-key",
    ),
    pytest.param(
        [_with_inputs(BATCH[0], mask=np.ones(9, np.float32))],
        "cross_entropy",
        ConfigurationError,
        "datum 0: loss_fn_inputs key 'mask' is not an input of cross_entropy",
        id="unexpected-key",
    ),
    pytest.param(
        [BATCH[0], _with_inputs(BATCH[1], weights=np.ones((5, 2), np.float32))],
        "cross_entropy",
        InvalidDataError,
        r"datum 1: weights has shape \[5, 2\]; expected \[5\]",
        id="wrong-shape",
    ),
    pytest.param(
        [BATCH[0], _forced(BATCH[1], weights=np.ones(4, np.float32))],
        "cross_entropy",
        InvalidDataError,
        r"datum 1: weights has shape \[4\]; expected \[5\]",
        id="wrong-length",
    ),
    pytest.param(
        [_rl(0, 4), _with_inputs(_rl(1, 4), advantages=np.array([0, 1, np.nan, 0], np.float32))],
        "ppo",
        InvalidDataError,
        r"datum 1: advantages has a non-finite value \(nan at flat index 2\)",
        id="nan-advantage",
    ),
    pytest.param(
        [_with_inputs(BATCH[0], weights=np.full(9, np.inf, np.float32))],
        "cross_entropy",
        InvalidDataError,
        "datum 0: weights has a non-finite value",
        id="inf-weight",
    ),
    pytest.param(
        [BATCH[0], _sft(5, 6, vocab=1000)],
        "cross_entropy",
        InvalidDataError,
        r"datum 1: model_input token at position \d+ is \d+, outside the vocabulary "
        r"\(vocab_size 64",
        id="input-id-outside-vocab",
    ),
    pytest.param(
        [_with_inputs(BATCH[0], target_tokens=np.array([1, 2, 3, 70, 1, 2, 3, 4, 5]))],
        "cross_entropy",
        InvalidDataError,
        r"datum 0: target_tokens\[3\] is 70, outside the vocabulary \(vocab_size 64",
        id="target-id-outside-vocab",
    ),
    pytest.param(
        [
            Datum(
                model_input=ModelInput(
                    chunks=(
                        ModelInput.from_ints([1, 2]).chunks[0],
                        ImageChunk(data=b"\x89PNG", format="png", expected_tokens=2),
                    )
                ),
                loss_fn_inputs={"target_tokens": np.arange(4), "weights": np.ones(4, np.float32)},
            )
        ],
        "cross_entropy",
        InvalidDataError,
        "datum 0: model_input chunk 1 is an image; .*does not support image inputs",
        id="image",
    ),
    pytest.param(
        [_with_inputs(BATCH[0], target_tokens=TensorData.from_numpy(np.ones(9, np.float32)))],
        "cross_entropy",
        InvalidDataError,
        "target_tokens are float32; they must be int64",
        id="float-targets",
    ),
    pytest.param(
        [_sft(0, 40)],
        "cross_entropy",
        InvalidDataError,
        "datum 0: model_input has 40 positions; the model accepts at most 32",
        id="too-long",
    ),
    pytest.param(
        [Datum(model_input=ModelInput.empty())],
        "cross_entropy",
        InvalidDataError,
        "datum 0: model_input is empty",
        id="empty-datum",
    ),
    pytest.param(
        [
            BATCH[1],
            _with_inputs(
                BATCH[1],
                target_tokens=np.ones((5, 2), np.int64),
                weights=np.ones((5, 2), np.float32),
            ),
        ],
        "cross_entropy",
        InvalidDataError,
        r"datums mix target_tokens shapes \(T,\) and \(T, K\)",
        id="mixed-k",
    ),
    pytest.param([], "cross_entropy", ConfigurationError, "no datums", id="no-datums"),
    pytest.param(["x"], "cross_entropy", ConfigurationError, "datum 0 is a str", id="not-datum"),
]


@pytest.mark.parametrize(("datums", "loss", "error", "message"), BAD_INPUTS)
def test_bad_input_fails_typed_and_leaves_gradients_alone(client, datums, loss, error, message):
    client.forward_backward([BATCH[0]], "cross_entropy").result(TIMEOUT)
    grads = {n: p.grad.clone() for n, p in client.model.named_parameters()}
    future = client.forward_backward(datums, loss)
    assert isinstance(future, Future)
    with pytest.raises(error, match=message):
        future.result(TIMEOUT)
    for name, p in client.model.named_parameters():
        assert torch.equal(p.grad, grads[name]), name
    with pytest.raises(error, match=message):
        client.forward(datums, loss).result(TIMEOUT)


def test_bad_loss_options_and_params_fail_typed(client):
    with pytest.raises(ConfigurationError, match="'eps' is not an option of ppo"):
        client.forward_backward([_rl(0, 3)], "ppo", {"eps": 0.2}).result(TIMEOUT)
    with pytest.raises(ConfigurationError, match="params must be AdamParams"):
        client.optim_step({"learning_rate": 1e-3}).result(TIMEOUT)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="loss_fn must be callable"):
        client.forward_backward_custom(BATCH, "dpo").result(TIMEOUT)  # type: ignore[arg-type]


def test_invalid_settings_are_reported_together(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        LocalTorchTrainingClient(num_kv_heads=3, checkpoint_dir=str(tmp_path))
    assert "training.local_torch.num_kv_heads: must divide num_heads (4), got 3" in str(info.value)
    with pytest.raises(ConfigurationError, match="device"):
        LocalTorchTrainingClient(device="gpu", checkpoint_dir=str(tmp_path))  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match=r"sees no CUDA device.*set device: cpu"):
        _client(tmp_path, device="cuda")
