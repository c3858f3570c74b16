"""TinkerModelInfo (asks the fake server's get_info) and TinkerTokenizer (the SDK's
tokenizer loading, offline on a local directory)."""

from __future__ import annotations

import json
import pathlib
import pickle
from typing import Any

import pytest

tinker = pytest.importorskip("tinker")
tokenizers = pytest.importorskip("tokenizers")

from crucible_train.adapters.tinker.model_info import TinkerModelInfo  # noqa: E402
from crucible_train.adapters.tinker.tokenizer import TinkerTokenizer  # noqa: E402
from crucible_train.errors import TokenizerError  # noqa: E402
from crucible_train.ports.model_info import ModelConfig, ModelInfo  # noqa: E402
from crucible_train.ports.tokenizer import Tokenizer  # noqa: E402
from servers.fake_tinker import serve  # noqa: E402


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from serve(monkeypatch)


def test_model_info_reports_what_get_info_says_and_nothing_else(fake):
    info = TinkerModelInfo(
        **fake.settings(base_model="org/tiny-model", lora_rank=2, api_key="tml-info-secret")
    )
    assert isinstance(info, ModelInfo)
    assert fake.requests == []  # nothing is asked before the first question
    config = info.get_config()
    assert config == ModelConfig(model_name="org/tiny-model")
    assert info.get_config() is config  # asked once, then cached
    assert fake.ops().count("create_model") == 1
    assert fake.bodies("create_model")[0]["lora_config"]["rank"] == 2
    assert info.count_parameters() is None
    assert info.get_special_tokens() is None
    assert "tml-info-secret" not in repr(info)


def _local_tokenizer(directory: pathlib.Path) -> pathlib.Path:
    """A tiny fast tokenizer saved the way a Hugging Face model directory holds it."""
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "<|end|>": 3}
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    model.add_special_tokens(["<|end|>"])
    directory.mkdir()
    model.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end|>"}),
        encoding="utf-8",
    )
    return directory


def test_tokenizer_loads_a_local_base_model_offline_and_pickles(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    directory = _local_tokenizer(tmp_path / "model")
    tokenizer = TinkerTokenizer(base_model=str(directory), api_key="tml-unused-here")
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.encode("hello world<|end|>") == [1, 2, 3]
    assert tokenizer.encode_batch(["world", "hello"]) == [[2], [1]]
    assert tokenizer.eos_token_id == 3
    assert dict(tokenizer.special_tokens) == {"<|end|>": 3}
    assert tokenizer.vocab_size == 4
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.encode("hello world<|end|>") == [1, 2, 3]
    assert "tml-unused-here" not in pickle.dumps(tokenizer).decode("latin-1")


def test_a_tokenizer_that_cannot_be_loaded_names_the_offline_backend(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable at import; without this the test waits ~45 s
    # for hub retries when another test imported it first.
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TokenizerError) as caught:
        TinkerTokenizer(base_model="no-such-org/no-such-model-xyz", api_key="tml-unused")
    message = str(caught.value)
    assert "no-such-org/no-such-model-xyz" in message
    assert "tokenizer.backend: huggingface" in message
