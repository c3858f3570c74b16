"""Unit tests for the noop adapters: construction, messages, metrics validation, memory blobs."""

from __future__ import annotations

import ast
import math
import pathlib
import pickle
import threading

import pytest

import crucible_train.adapters.noop as noop
from crucible_train.adapters.noop import (
    NoopBlobStore,
    NoopDatasetStore,
    NoopEmbeddingClient,
    NoopMetricsSink,
    NoopModelInfo,
    NoopTokenizer,
    NoopTrainingClient,
    NoopVectorStore,
)
from crucible_train.adapters.noop._not_configured import not_configured
from crucible_train.errors import (
    BackendNotConfiguredError,
    BlobNotFoundError,
    BlobPathError,
    ConfigurationError,
    MetricsSinkError,
)
from crucible_train.ports import PORTS, ModelConfig
from crucible_train.types import AdamParams

NOOP_FOR_PORT = {
    "training": "NoopTrainingClient",
    "sampling": "NoopSamplingClient",
    "tokenizer": "NoopTokenizer",
    "model_info": "NoopModelInfo",
    "metrics": "NoopMetricsSink",
    "http": "NoopHttpClient",
    "embedding": "NoopEmbeddingClient",
    "llm": "NoopLLMClient",
    "blob_store": "NoopBlobStore",
    "dataset_store": "NoopDatasetStore",
    "vector_store": "NoopVectorStore",
    "hub": "NoopHubClient",
}


# --- the package ------------------------------------------------------------------------


def test_package_exports_one_noop_adapter_per_port():
    assert sorted(noop.__all__) == sorted(NOOP_FOR_PORT.values())


@pytest.mark.parametrize(("port", "name"), sorted(NOOP_FOR_PORT.items()))
def test_each_adapter_takes_no_arguments_and_subclasses_its_port(port, name):
    cls = getattr(noop, name)
    assert PORTS[port] in cls.__mro__
    assert isinstance(cls(), PORTS[port])
    with pytest.raises(TypeError):
        cls("unexpected")


# --- the "not configured" message -------------------------------------------------------


def test_message_names_the_key_and_how_to_list_backends():
    with pytest.raises(BackendNotConfiguredError) as info:
        NoopTrainingClient().optim_step(AdamParams())
    assert str(info.value) == (
        "training.backend is 'noop', which cannot run optim_step; set training.backend in "
        "containers.yaml (or pass training.backend=NAME) to a real backend; "
        "`crucible-train config check training.backend=list` lists them"
    )
    assert isinstance(info.value, ConfigurationError)


def test_message_for_any_port_names_its_key():
    message = str(not_configured("future_port", "do_it"))
    assert "future_port.backend is 'noop', which cannot run do_it" in message
    assert "config check future_port.backend=list" in message


def test_messages_are_built_in_one_place():
    # Every refusal goes through not_configured(); no module words the message itself.
    package = pathlib.Path(noop.__file__).parent
    for module in package.glob("*.py"):
        if module.name == "_not_configured.py":
            continue
        tree = ast.parse(module.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        literals = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ]
        assert not any("containers.yaml" in text for text in literals), module.name
        assert not any("cannot run" in text for text in literals), module.name


def test_dataset_store_refuses_at_call_time_not_on_iteration():
    with pytest.raises(BackendNotConfiguredError, match=r"dataset_store\.backend"):
        NoopDatasetStore().iter_records("train.jsonl")


# --- adapters with meaningful no-ops ----------------------------------------------------


def test_model_info_knows_nothing():
    info = NoopModelInfo()
    assert info.get_config() == ModelConfig()
    assert info.count_parameters() is None
    assert info.get_special_tokens() is None


def test_model_config_fields_are_all_none():
    config = NoopModelInfo().get_config()
    for field in ModelConfig.__attrs_attrs__:
        assert getattr(config, field.name) is None


def test_tokenizer_and_embedding_properties_describe_nothing():
    tokenizer = NoopTokenizer()
    assert (tokenizer.vocab_size, dict(tokenizer.special_tokens), tokenizer.eos_token_id) == (
        0,
        {},
        None,
    )
    assert NoopEmbeddingClient().dimension == 0
    assert len(NoopVectorStore()) == 0


# --- metrics sink -----------------------------------------------------------------------


def test_metrics_sink_accepts_and_discards():
    sink = NoopMetricsSink()
    sink.log_hparams({"lr": 1e-3})
    sink.log_metrics({"loss": math.nan, "ok": True, "n": 3, "phase": "eval"}, step=0)
    sink.log_long_text("k", "text")
    sink.sync()
    assert sink.get_url() is None


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ([("loss", 1.0)], "mapping"),
        ({("tuple",): 1.0}, "name"),
        ({"loss": None}, "number"),
        ({"loss": [1.0]}, "number"),
    ],
)
def test_metrics_sink_refuses_malformed_metrics(metrics, message):
    with pytest.raises(MetricsSinkError, match=message):
        NoopMetricsSink().log_metrics(metrics)


def test_metrics_sink_refuses_malformed_hparams_and_texts():
    sink = NoopMetricsSink()
    with pytest.raises(MetricsSinkError, match="mapping"):
        sink.log_hparams(["lr", 1.0])
    with pytest.raises(MetricsSinkError, match="strings"):
        sink.log_hparams({1: "x"})
    with pytest.raises(MetricsSinkError, match="string"):
        sink.log_long_text("k", 3)


def test_metrics_sink_close_is_idempotent_and_final():
    sink = NoopMetricsSink()
    sink.close()
    sink.close()
    with pytest.raises(MetricsSinkError, match=r"log_metrics called after close\(\)"):
        sink.log_metrics({"loss": 1.0}, step=3)


# --- in-memory blob store ---------------------------------------------------------------


def test_blob_store_clone_is_independent():
    store = NoopBlobStore()
    store.put("a", b"1")
    clone = pickle.loads(pickle.dumps(store))
    clone.put("b", b"2")
    store.delete("a")
    assert store.list() == []
    assert clone.list() == ["a", "b"]


def test_blob_store_errors_are_typed():
    store = NoopBlobStore()
    with pytest.raises(BlobNotFoundError, match="'x'"):
        store.get("x")
    with pytest.raises(BlobPathError, match="absolute"):
        store.put("/x", b"")
    with pytest.raises(BlobPathError, match="backslash"):
        store.exists("a\\b")
    with pytest.raises(BlobPathError, match="empty segment"):
        store.delete("a//b")


def test_blob_store_is_thread_safe():
    store = NoopBlobStore()

    def work(worker: int) -> None:
        for index in range(200):
            store.put(f"w{worker}/{index}", bytes([worker]))
            store.list(f"w{worker}/")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store) == 1600
    assert repr(store) == "NoopBlobStore(<1600 blobs in memory>)"
