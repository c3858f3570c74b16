"""The local torch engine's model building, sampler weights and model info."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crucible_train.adapters.local_torch.model import (  # noqa: E402
    build_model,
    load_for_sampler,
    model_fingerprint,
    require_packages,
    resolve_settings,
    save_for_sampler,
)
from crucible_train.adapters.local_torch.model_info import LocalTorchModelInfo  # noqa: E402
from crucible_train.adapters.local_torch.settings import LocalTorchModelSettings  # noqa: E402
from crucible_train.adapters.local_torch.training_client import (  # noqa: E402
    LocalTorchTrainingClient,
)
from crucible_train.errors import AdapterUnavailableError, ConfigurationError  # noqa: E402
from crucible_train.ports.model_info import ModelConfig  # noqa: E402
from crucible_train.types import AdamParams, Datum, ModelInput  # noqa: E402
from tiny_runs import TINY_ENGINE  # noqa: E402

pytestmark = pytest.mark.torch

TINY = dict(TINY_ENGINE)
IDS = torch.tensor([[1, 5, 9, 2, 33, 7]])


def _settings(**overrides) -> LocalTorchModelSettings:
    return resolve_settings({**TINY, **overrides})


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_default_model_is_the_documented_small_qwen3():
    model = build_model(resolve_settings({}))
    config = model.config
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (512, 128, 4)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 32)
    assert (config.intermediate_size, config.max_position_embeddings) == (384, 2048)
    assert config.tie_word_embeddings
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert sum(p.numel() for p in model.parameters()) == 853_376  # about 1M
    assert next(model.parameters()).dtype == torch.float32
    assert not model.training  # eval mode: no dropout, forward == forward_backward


def test_llama_architecture_and_bfloat16():
    model = build_model(_settings(architecture="llama", dtype="bfloat16"))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


def test_the_seed_decides_the_weights():
    a, b, c = (build_model(_settings(seed=s)) for s in (3, 3, 4))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_sampler_weights_round_trip_and_load_as_model_path(tmp_path):
    model = build_model(_settings())
    path = save_for_sampler(model, tmp_path / "sampler")
    assert path == str(tmp_path / "sampler")
    loaded = load_for_sampler(path)
    assert not loaded.training
    assert torch.equal(_logits(loaded), _logits(model))
    from_path = build_model(_settings(model_path=path, hidden_size=999))  # shapes ignored
    assert torch.equal(_logits(from_path), _logits(model))
    bf16 = load_for_sampler(path, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert next(bf16.parameters()).dtype == torch.bfloat16


def test_saving_again_replaces_the_directory_atomically(tmp_path):
    first, second = build_model(_settings(seed=1)), build_model(_settings(seed=2))
    save_for_sampler(first, tmp_path / "w")
    save_for_sampler(second, tmp_path / "w")
    assert torch.equal(_logits(load_for_sampler(tmp_path / "w")), _logits(second))
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no temporary directories left


def test_lora_trains_only_adapters_and_saves_merged_weights(tmp_path):
    with LocalTorchTrainingClient(
        **TINY, lora_rank=4, lora_alpha=8.0, checkpoint_dir=str(tmp_path)
    ) as client:
        trainable = [n for n, p in client.model.named_parameters() if p.requires_grad]
        assert trainable
        assert all("lora_" in name for name in trainable)
        datum = Datum(
            model_input=ModelInput.from_ints([1, 2, 3, 4]),
            loss_fn_inputs={"target_tokens": [2, 3, 4, 5], "weights": np.ones(4, np.float32)},
        )
        for _ in range(3):
            client.forward_backward([datum], "cross_entropy")
            client.optim_step(AdamParams(learning_rate=0.05))
        path = client.save_weights_for_sampler("lora").result(60)
        merged = load_for_sampler(path)
        assert type(merged).__name__ == "Qwen3ForCausalLM"
        torch.testing.assert_close(_logits(merged), _logits(client.model), rtol=1e-4, atol=1e-5)
        # The live model is still the LoRA wrapper (merging happened on a copy).
        assert any("lora_" in n for n, _ in client.model.named_parameters())


def test_lora_targets_must_exist():
    with pytest.raises(ConfigurationError, match=r"lora_targets .*do not fit this model"):
        build_model(_settings(lora_rank=2, lora_targets=["no_such_proj"]))


def test_fingerprint_names_shape_and_lora():
    fingerprint = model_fingerprint(build_model(_settings()), _settings())
    assert fingerprint == {
        "architecture": "qwen3",
        "vocab_size": 64,
        "hidden_size": 32,
        "num_layers": 1,
        "num_heads": 2,
        "num_kv_heads": 1,
        "head_dim": 16,
        "intermediate_size": 64,
        "tie_word_embeddings": True,
        "lora_rank": 0,
        "lora_alpha": None,
        "lora_targets": None,
        "base_seed": None,
    }
    json.dumps(fingerprint)


@pytest.mark.parametrize(
    ("path_kind", "message"),
    [("missing", "is not a directory"), ("no-config", "has no config.json")],
)
def test_bad_model_directories_are_configuration_errors(tmp_path, path_kind, message):
    path = tmp_path / "model"
    if path_kind == "no-config":
        path.mkdir()
    with pytest.raises(ConfigurationError, match=message):
        build_model(_settings(model_path=str(path)))
    with pytest.raises(ConfigurationError, match=message):
        load_for_sampler(path)


def test_relative_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_settings({}).checkpoint_dir == str(tmp_path / "runs" / "checkpoints")


@pytest.mark.parametrize("package", ["torch", "transformers", "safetensors", "peft"])
def test_missing_packages_name_the_install_command_and_the_noop_fallback(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(AdapterUnavailableError) as info:
        require_packages("model_info", lora=True)
    message = str(info.value)
    assert package in message
    assert "pip install torch==2.13.0 && pip install 'crucible-train[local]'" in message
    assert "model_info.backend: noop" in message


def test_peft_is_needed_only_for_lora(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "peft", None)
    build_model(_settings())
    with pytest.raises(AdapterUnavailableError, match="peft"):
        LocalTorchTrainingClient(**TINY, lora_rank=2, checkpoint_dir=str(tmp_path))


# --- model info -----------------------------------------------------------------------------


def test_model_info_of_a_random_model():
    info = LocalTorchModelInfo(**TINY)
    assert info.get_config() == ModelConfig(
        model_name=None,
        vocab_size=64,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        max_seq_length=32,
        architecture="qwen3",
    )
    built = build_model(_settings())
    assert info.count_parameters() == sum(p.numel() for p in built.parameters())
    assert info.get_special_tokens() is None


def test_model_info_counts_lora_adapters():
    plain = LocalTorchModelInfo(**TINY).count_parameters()
    lora = LocalTorchModelInfo(**TINY, lora_rank=2, lora_targets=["q_proj"]).count_parameters()
    # q_proj: 32 -> 2 * 16; A is (2, 32), B is (32, 2).
    assert lora - plain == 2 * 32 + 32 * 2


def test_model_info_of_a_model_directory_with_a_tokenizer(tmp_path):
    path = Path(save_for_sampler(build_model(_settings(architecture="llama")), tmp_path / "m"))
    (path / "tokenizer.json").write_text(
        json.dumps(
            {
                "added_tokens": [
                    {"id": 0, "content": "<|endoftext|>", "special": True},
                    {"id": 1, "content": "<|im_start|>", "special": True},
                    {"id": 5, "content": "plain", "special": False},
                ]
            }
        )
    )
    info = LocalTorchModelInfo(model_path=str(path))
    assert info.get_config().model_name == "m"
    assert info.get_config().architecture == "llama"
    assert info.get_config().vocab_size == 64
    assert info.get_special_tokens() == {"<|endoftext|>": 0, "<|im_start|>": 1}
    assert info.count_parameters() == LocalTorchModelInfo(**TINY).count_parameters() - (
        # Llama has no q/k norms; Qwen3 has two of head_dim each.
        2 * 16
    )


def test_adapter_signatures_repeat_the_schema_defaults():
    # The three local_torch adapters spell the settings out as keyword arguments; they must
    # not drift from LocalTorchModelSettings, or code and containers.yaml would disagree.
    import inspect

    import attrs

    from crucible_train.adapters.local_torch.sampling_client import LocalTorchSamplingClient

    expected = {}
    for field in attrs.fields(LocalTorchModelSettings):
        default = field.default
        expected[field.name] = default.factory() if isinstance(default, attrs.Factory) else default
    for adapter in (LocalTorchTrainingClient, LocalTorchModelInfo, LocalTorchSamplingClient):
        parameters = inspect.signature(adapter).parameters
        for name, default in expected.items():
            given = parameters[name].default
            assert (list(given) if name == "lora_targets" else given) == default, (adapter, name)
