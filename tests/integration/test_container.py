"""Integration tests for crucible_train.container: containers.yaml → validated config → adapters.

Every test builds its own container (function scope) from an explicit ``environ`` and
``base_dir``, so nothing depends on the machine's environment or the current directory.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink
from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.huggingface.hub_client import HuggingFaceHubClient
from crucible_train.adapters.memory.vector_store import NumpyVectorStore
from crucible_train.adapters.noop import NoopMetricsSink
from crucible_train.config import field_specs, secret_field, validate_settings
from crucible_train.container import (
    BACKENDS,
    INJECTED_ARGUMENTS,
    TRAIN_RECIPES,
    AppContainer,
    ResolvedConfig,
    build_container,
    injected_arguments,
    load_config,
)
from crucible_train.core.metrics_fanout import MultiplexMetricsSink
from crucible_train.core.renderers import list_renderers
from crucible_train.errors import ConfigurationError, MissingSecretError
from crucible_train.ports import PORTS

from extra_backends import branch, extra_backends
from fakes import FakeMetricsSink

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_Distinctive_S3cret_value_9182"
PORT_KEYS = list(PORTS)
SINKS = ", ".join(sorted(BACKENDS["metrics"]))  # valid sink names, as messages list them


# --- test-only backends -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class KeyedSettings:
    """A backend with a required secret and a typed setting."""

    api_key: str = secret_field(env="CT_TEST_API_KEY")
    retries: int = 2


@attrs.define
class Builds:
    """What the counting adapters did: constructor calls and close calls per name."""

    built: list[str] = attrs.Factory(list)
    closed: list[str] = attrs.Factory(list)
    kwargs: dict[str, dict[str, Any]] = attrs.Factory(dict)


@pytest.fixture
def builds() -> Iterator[Builds]:
    """Adds counting backends to the diagram: training alpha/beta/keyed and http closing."""
    record = Builds()

    def counting(name: str) -> type:
        class Counting:
            def __init__(self, **kwargs: Any) -> None:
                record.built.append(name)
                record.kwargs[name] = kwargs

            def close(self) -> None:
                record.closed.append(name)

        Counting.__name__ = f"Counting_{name}"
        return Counting

    training = {
        "alpha": branch("training", "alpha", counting("alpha")),
        "beta": branch("training", "beta", counting("beta")),
        "keyed": branch("training", "keyed", counting("keyed"), KeyedSettings),
    }
    closing = branch("http", "closing", counting("closing"))
    with extra_backends("training", **training), extra_backends("http", closing=closing):
        yield record


@pytest.fixture
def env() -> dict[str, str]:
    """An explicit, empty environment (the real one is never consulted)."""
    return {}


@pytest.fixture
def app(tmp_path: Path, env: dict[str, str]) -> Iterator[AppContainer]:
    """A container from the packaged default, shut down after the test."""
    container = build_container(environ=env, base_dir=tmp_path)
    yield container
    container.shutdown_resources()


def _problems(
    *overrides: str,
    env: dict[str, str] | None = None,
    base_dir: Path | None = None,
    config_file: Path | str | None = None,
) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        load_config(config_file, overrides, environ=env or {}, base_dir=base_dir or Path("/"))
    return list(info.value.problems)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the packaged default -----------------------------------------------------------------


def test_packaged_default_chooses_the_offline_profile(tmp_path: Path) -> None:
    resolved = load_config(environ={}, base_dir=tmp_path)
    assert resolved.backends() == {
        "training": "local_torch",
        "sampling": "local_torch",
        "tokenizer": "byte_level",
        "model_info": "local_torch",
        "metrics": ["files", "console"],
        "http": "requests",
        "embedding": "noop",
        "llm": "noop",
        "blob_store": "files",
        "dataset_store": "files",
        "vector_store": "memory",
        "hub": "huggingface",
    }
    data = resolved.as_dict()
    assert data["metrics"]["run_dir"] == str(tmp_path / "runs" / "default")
    assert data["blob_store"]["files"]["root"] == str(tmp_path / "runs" / "blobs")
    assert data["dataset_store"]["files"]["root"] == str(tmp_path)
    assert data["hub"]["huggingface"]["token"] is None  # optional secret, unset
    assert data["hub"]["huggingface"]["offline"] is False
    # The embedded default: a tiny random model and a byte tokenizer that fits it.
    assert data["tokenizer"]["byte_level"]["vocab_size"] == 512
    assert data["training"]["local_torch"]["vocab_size"] == 512
    assert "<|im_start|>" in data["tokenizer"]["byte_level"]["special_tokens"]
    assert data["train"]["renderer"] == "qwen3_instruct"
    assert data["train"]["runs_root"] == str(tmp_path / "runs")


def test_packaged_yaml_comments_every_key_and_holds_no_literal_secret() -> None:
    text = resources.files("crucible_train").joinpath("containers.yaml").read_text("utf-8")
    key_lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert key_lines
    assert all(" # " in line for line in key_lines), [x for x in key_lines if " # " not in x]
    data = yaml.safe_load(text)
    data.pop("train")  # recipe settings, no secrets
    for port, block in data.items():
        for name, backend in BACKENDS[port].items():
            settings = block.get(name) or {}
            for spec in field_specs(backend.settings).values():
                if spec.is_secret and spec.name in settings:
                    assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*:?\}", settings[spec.name])


def test_packaged_train_block_lists_every_recipe_field_with_its_default() -> None:
    text = resources.files("crucible_train").joinpath("containers.yaml").read_text("utf-8")
    train = yaml.safe_load(text)["train"]
    assert list(train) == ["renderer", "runs_root", *TRAIN_RECIPES]
    for name, recipe in TRAIN_RECIPES.items():
        schema = recipe.load_config_class()
        assert schema is not None, name
        assert list(train[name]) == [field.name for field in attrs.fields(schema)], name
        assert schema(**train[name]) == schema(), name


def test_train_block_problems_are_reported_with_the_rest() -> None:
    assert _problems(
        "train.sft.batch_sz=3",
        "train.sft.max_steps=many",
        "train.renderer=qwen4",
        "train.ppo={}",
        "training.backend=torch",
    ) == [
        "training.backend: unknown backend 'torch'; valid: local_torch, noop, tinker",
        "train.renderer: unknown renderer 'qwen4' (did you mean 'qwen3'?); valid: "
        + ", ".join(list_renderers()),
        "train.ppo: unknown key (did you mean 'dpo'?); valid: renderer, runs_root, sft, rl, "
        "dpo, distill",
        "train.sft.max_steps: expected a whole number or null, got 'many' (str)",
        "train.sft.batch_sz: unknown setting (did you mean 'batch_size'?); valid: "
        + ", ".join(sorted(field_specs(TRAIN_RECIPES["sft"].load_config_class()))),
    ]


def test_packaged_config_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    resolved = load_config(environ={})
    # Relative paths follow the start directory, and the packaged file is still found.
    assert resolved.as_dict()["blob_store"]["files"]["root"] == str(elsewhere / "runs" / "blobs")


def test_every_registered_backend_matches_its_adapter_signature() -> None:
    # Settings are exactly the keyword-only arguments, except those the diagram injects
    # (http for adapters that talk HTTP, run_dir for metrics sinks) and optional code-only
    # ones (console=).
    for port, backends in BACKENDS.items():
        assert port in PORTS
        assert set(injected_arguments(port)) <= set(INJECTED_ARGUMENTS)
        for name, backend in backends.items():
            parameters = inspect.signature(backend.adapter).parameters
            keywords = {
                key for key, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
            }
            settings = set(field_specs(backend.settings))
            injected = set(backend.injected)
            assert injected <= set(INJECTED_ARGUMENTS)
            assert settings <= keywords, f"{port}.{name}"
            assert injected <= keywords, f"{port}.{name}"
            assert not settings & injected, f"{port}.{name}"
            # Whatever the adapter can be given from outside, the diagram gives it.
            assert keywords & set(INJECTED_ARGUMENTS) <= injected, f"{port}.{name}"
            for extra in keywords - settings - injected:
                assert parameters[extra].default is not inspect.Parameter.empty, (
                    f"{port}.{name}: {extra} is neither a setting nor injected, so it needs "
                    "a default"
                )
            positional = [
                key
                for key, p in parameters.items()
                if p.kind is not inspect.Parameter.KEYWORD_ONLY
                and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
            ]
            assert positional == [], f"{port}.{name}: adapters take keyword arguments only"


def test_every_registered_schema_has_valid_defaults() -> None:
    for port, backends in BACKENDS.items():
        for name, backend in backends.items():
            required = {s.name for s in field_specs(backend.settings).values() if s.required}
            _, problems = validate_settings(
                backend.settings, {}, f"{port}.{name}", allow_missing=required
            )
            assert problems == []


# --- building adapters --------------------------------------------------------------------


def test_default_container_builds_the_selected_adapters(app: AppContainer, tmp_path: Path) -> None:
    blob_store = app.blob_store()
    assert isinstance(blob_store, FilesBlobStore)
    blob_store.put("a/b.txt", b"hello")
    assert (tmp_path / "runs" / "blobs" / "a" / "b.txt").read_bytes() == b"hello"
    assert isinstance(app.dataset_store(), FilesDatasetStore)
    assert isinstance(app.vector_store(), NumpyVectorStore)
    assert app.config.training.backend() == "local_torch"  # built by the torch tests
    assert isinstance(app.hub(), HuggingFaceHubClient)
    assert app.blob_store() is blob_store  # singletons


@pytest.mark.torch
def test_local_torch_backends_share_one_model_description(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from crucible_train.adapters.local_torch.model_info import LocalTorchModelInfo
    from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient

    tiny = "{vocab_size: 64, hidden_size: 32, num_layers: 1, num_heads: 2, num_kv_heads: 1}"
    container = build_container(
        overrides=[
            "training.backend=local_torch",
            f"training.local_torch={tiny}",
            "training.local_torch.checkpoint_dir=ckpt",
            "model_info.backend=local_torch",
            f"model_info.local_torch={tiny}",
        ],
        environ={},
        base_dir=tmp_path,
    )
    training = container.training()
    try:
        assert isinstance(training, LocalTorchTrainingClient)
        assert training.settings.checkpoint_dir == str(tmp_path / "ckpt")
        info = container.model_info()
        assert isinstance(info, LocalTorchModelInfo)
        assert info.get_config().hidden_size == training.settings.hidden_size == 32
        assert info.count_parameters() == sum(p.numel() for p in training.model.parameters())
    finally:
        training.close()


def test_local_torch_settings_are_validated_with_the_rest() -> None:
    assert _problems(
        "training.backend=local_torch",
        "training.local_torch.num_kv_heads=3",
        "sampling.local_torch.dtype=float16",
        "model_info.local_torch.lora_targets=[]",
    ) == [
        "training.local_torch.num_kv_heads: must divide num_heads (4), got 3",
        "sampling.local_torch.dtype: expected one of 'float32', 'bfloat16', got 'float16' (str)",
        "model_info.local_torch.lora_targets: expected a non-empty list of module names such "
        "as [q_proj, v_proj], got []",
    ]


def test_metrics_multiplexes_the_listed_sinks(app: AppContainer) -> None:
    metrics = app.metrics()
    assert isinstance(metrics, MultiplexMetricsSink)
    assert [type(sink) for sink in metrics.sinks] == [FilesMetricsSink, ConsoleMetricsSink]
    assert app.metrics_sinks() == list(metrics.sinks)


def test_config_provider_is_strict_and_holds_the_validated_values(app: AppContainer) -> None:
    assert app.config.training.backend() == "local_torch"
    assert app.config.vector_store.memory.dimension() is None
    with pytest.raises(Exception, match="Undefined configuration option"):
        app.config.training.missing_key()


def test_user_file_and_overrides_layer_over_the_default(tmp_path: Path) -> None:
    user = _write(
        tmp_path / "my.yaml",
        "blob_store:\n  files:\n    root: data/blobs\nvector_store:\n  memory:\n    dimension: 8\n"
        "hub:\n  huggingface:\n    offline: true\n",
    )
    container = build_container(
        "my.yaml",  # relative to base_dir
        ["vector_store.memory.dimension=16", "metrics.sinks=[noop]", "hub.huggingface.timeout=3"],
        environ={},
        base_dir=tmp_path,
    )
    try:
        store = container.blob_store()
        assert isinstance(store, FilesBlobStore)
        store.put("k", b"v")
        assert (tmp_path / "data" / "blobs" / "k").read_bytes() == b"v"
        assert container.config.vector_store.memory.dimension() == 16  # override beats file
        assert container.config.hub.huggingface.offline() is True  # file beats packaged
        assert container.config.hub.huggingface.timeout() == 3.0
        assert container.config.hub.huggingface.endpoint() is None  # packaged kept
    finally:
        container.shutdown_resources()
    resolved = load_config(user, environ={}, base_dir=tmp_path)
    assert resolved.sources[1] == str(user)


def test_override_values_are_read_as_yaml(tmp_path: Path) -> None:
    resolved = load_config(
        overrides=["hub.huggingface.offline=true", "vector_store.memory.dimension=3"],
        environ={},
        base_dir=tmp_path,
    )
    hub = resolved.as_dict()["hub"]["huggingface"]
    assert hub["offline"] is True
    assert resolved.as_dict()["vector_store"]["memory"]["dimension"] == 3


def test_a_backend_without_a_sub_block_takes_its_defaults(tmp_path: Path) -> None:
    resolved = load_config(overrides=["blob_store={backend: files}"], environ={}, base_dir=tmp_path)
    assert resolved.as_dict()["blob_store"]["files"]["root"] == str(tmp_path / "runs" / "blobs")


def test_unselected_blocks_are_validated_but_not_kept(tmp_path: Path) -> None:
    resolved = load_config(overrides=["blob_store.backend=noop"], environ={}, base_dir=tmp_path)
    assert resolved.as_dict()["blob_store"] == {"backend": "noop", "noop": {}}
    problems = _problems("blob_store.backend=noop", "blob_store.files.root=3")
    assert problems == ["blob_store.files.root: expected a string, got 3 (int)"]


# --- only the selected branch is built; shutdown closes ---------------------------------


def test_only_the_selected_branch_is_ever_built(builds: Builds, tmp_path: Path) -> None:
    container = build_container(overrides=["training.backend=alpha"], environ={}, base_dir=tmp_path)
    container.init_resources()
    first = container.training()
    assert container.training() is first
    container.shutdown_resources()
    assert builds.built == ["alpha"]


def test_shutdown_closes_the_built_closable_adapters(builds: Builds, tmp_path: Path) -> None:
    recording_sink = branch("metrics", "recording", FakeMetricsSink)
    with extra_backends("metrics", recording=recording_sink):
        container = build_container(
            overrides=["http.backend=closing", "metrics.sinks=[noop, recording]"],
            environ={},
            base_dir=tmp_path,
        )
    container.init_resources()
    assert container.http_resource() is container.http()
    sinks = container.metrics_sinks()
    assert [type(sink) for sink in sinks] == [NoopMetricsSink, FakeMetricsSink]
    recording = sinks[1]
    assert isinstance(recording, FakeMetricsSink)
    assert builds.closed == []
    container.shutdown_resources()
    assert builds.closed == ["closing"]
    assert recording.closed == 1


def test_containers_do_not_share_state(builds: Builds, tmp_path: Path) -> None:
    first = build_container(overrides=["training.backend=alpha"], environ={}, base_dir=tmp_path)
    second = build_container(overrides=["training.backend=beta"], environ={}, base_dir=tmp_path)
    assert first.training() is not second.training()
    assert builds.built == ["alpha", "beta"]
    # Each container copies the diagram's providers: no singleton is shared.
    assert first.training.providers["alpha"] is not AppContainer.training.providers["alpha"]
    assert first.training.providers["alpha"] is not second.training.providers["alpha"]
    first.shutdown_resources()
    second.shutdown_resources()


def test_secrets_reach_the_adapter(builds: Builds, tmp_path: Path) -> None:
    container = build_container(
        overrides=["training.backend=keyed", "training.keyed={retries: 5}"],
        environ={"CT_TEST_API_KEY": SECRET},
        base_dir=tmp_path,
    )
    container.training()
    assert builds.kwargs["keyed"] == {"api_key": SECRET, "retries": 5}


# --- bad input ------------------------------------------------------------------------------


def test_unknown_backend_lists_the_valid_ones(builds: Builds) -> None:
    assert _problems("training.backend=torchh") == [
        "training.backend: unknown backend 'torchh'; "
        "valid: alpha, beta, keyed, local_torch, noop, tinker"
    ]


def test_unknown_backend_without_test_backends() -> None:
    assert _problems("blob_store.backend=s3") == [
        "blob_store.backend: unknown backend 's3'; valid: files, noop"
    ]


def test_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", "training:\n  backend: noop\n  noop: {\n")
    (problem,) = _problems(config_file=bad)
    assert problem.startswith(f"{bad}:")
    assert re.match(rf"{re.escape(str(bad))}:\d+:\d+: invalid YAML: ", problem)
    bad2 = _write(tmp_path / "bad2.yaml", "training:\n  backend: noop\n   oops: 1\n")
    (problem,) = _problems(config_file=bad2)
    assert problem.startswith(f"{bad2}:3:")


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    dup = _write(tmp_path / "dup.yaml", "training:\n  backend: noop\n  backend: alpha\n")
    (problem,) = _problems(config_file=dup)
    assert problem == f"{dup}:3:3: invalid YAML: duplicate key 'backend' (first defined on line 2)"


def test_missing_explicit_config_file_names_its_absolute_path(tmp_path: Path) -> None:
    assert _problems(config_file="nope.yaml", base_dir=tmp_path) == [
        f"config file {tmp_path / 'nope.yaml'} does not exist"
    ]


def test_an_empty_or_non_mapping_config_file_is_an_error(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.yaml", "# nothing here\n")
    assert _problems(config_file=empty) == [
        f"{empty}: the file is empty; expected a mapping of port blocks"
    ]
    listed = _write(tmp_path / "list.yaml", "- training\n")
    assert "expected a mapping of port blocks" in _problems(config_file=listed)[0]
    assert "is not a regular file" in _problems(config_file=tmp_path)[0]


def test_unset_required_secret_names_the_variable(builds: Builds) -> None:
    with pytest.raises(MissingSecretError) as info:
        load_config(overrides=["training.backend=keyed"], environ={}, base_dir=Path("/"))
    assert info.value.problems == (
        "training.keyed.api_key: environment variable CT_TEST_API_KEY is not set",
    )


def test_empty_required_secret_is_missing_too(builds: Builds) -> None:
    with pytest.raises(MissingSecretError, match="CT_TEST_API_KEY is set but empty"):
        load_config(
            overrides=["training.backend=keyed"],
            environ={"CT_TEST_API_KEY": "  "},
            base_dir=Path("/"),
        )


def test_secret_reference_names_the_variable_it_uses(builds: Builds) -> None:
    with pytest.raises(MissingSecretError, match="environment variable MY_KEY is not set"):
        load_config(
            overrides=["training.backend=keyed", "training.keyed.api_key=${MY_KEY:}"],
            environ={"CT_TEST_API_KEY": "unused"},
            base_dir=Path("/"),
        )
    resolved = load_config(
        overrides=["training.backend=keyed", "training.keyed.api_key=${MY_KEY}"],
        environ={"MY_KEY": SECRET},
        base_dir=Path("/"),
    )
    assert resolved.as_dict(redact_secrets=False)["training"]["keyed"]["api_key"] == SECRET


def test_unselected_backends_do_not_need_their_secrets(builds: Builds) -> None:
    resolved = load_config(
        overrides=["training.keyed={retries: 1}"], environ={}, base_dir=Path("/")
    )
    assert resolved.backends()["training"] == "local_torch"
    # ... but their other settings are still checked.
    assert _problems("training.keyed={retries: many}") == [
        "training.keyed.retries: expected a whole number, got 'many' (str)"
    ]


def test_optional_secret_is_none_when_unset_and_read_when_set() -> None:
    unset = load_config(environ={}, base_dir=Path("/"))
    assert unset.as_dict(redact_secrets=False)["hub"]["huggingface"]["token"] is None
    empty = load_config(environ={"HF_TOKEN": ""}, base_dir=Path("/"))
    assert empty.as_dict(redact_secrets=False)["hub"]["huggingface"]["token"] is None
    set_ = load_config(environ={"HF_TOKEN": SECRET}, base_dir=Path("/"))
    assert set_.as_dict(redact_secrets=False)["hub"]["huggingface"]["token"] == SECRET


def test_literal_secrets_are_refused_without_being_quoted(builds: Builds) -> None:
    problems = _problems(f"hub.huggingface.token={SECRET}", f"training.keyed.api_key={SECRET}")
    assert problems == [
        "training.keyed.api_key: secrets must come from environment variables; "
        "write `api_key: ${CT_TEST_API_KEY:}` and export CT_TEST_API_KEY",
        "hub.huggingface.token: secrets must come from environment variables; "
        "write `token: ${HF_TOKEN:}` and export HF_TOKEN",
    ]
    partial = _problems("hub.huggingface.token=Bearer ${HF_TOKEN}", env={"HF_TOKEN": SECRET})
    assert "secrets must come from environment variables" in partial[0]
    default = _problems(f"hub.huggingface.token=${{HF_TOKEN:{SECRET}}}")
    assert "default must be empty" in default[0]
    assert SECRET not in "\n".join(problems + partial + default)


def test_wrong_type_names_the_key_and_expected_type() -> None:
    assert _problems("blob_store.files.root=3", "hub.huggingface.offline=sometimes") == [
        "blob_store.files.root: expected a string, got 3 (int)",
        "hub.huggingface.offline: expected true or false, got 'sometimes' (str)",
    ]


def test_every_problem_is_reported_in_one_error(builds: Builds) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(
            overrides=[
                "foo",
                "trainig.backend=noop",
                "training.backend=keyed",  # missing secret, reported with the rest
                "sampling.backend=torchh",
                "metrics.sinks=[noop, noop, tensorboard]",
                "blob_store.files.root=3",
                "hub.huggingface.timout=3",
            ],
            environ={},
            base_dir=Path("/"),
        )
    error = info.value
    assert not isinstance(error, MissingSecretError)
    assert str(error).splitlines() == list(error.problems)
    assert error.problems == (
        "override 'foo': expected key=value, e.g. training.backend=noop or metrics.sinks=[noop]",
        "trainig: unknown top-level key (did you mean 'training'?); valid: blob_store, "
        "dataset_store, embedding, http, hub, llm, metrics, model_info, sampling, tokenizer, "
        "train, training, vector_store",
        "training.keyed.api_key: environment variable CT_TEST_API_KEY is not set",
        "sampling.backend: unknown backend 'torchh'; valid: local_torch, noop, tinker",
        "metrics.sinks[1]: sink 'noop' is listed twice; list each sink once",
        f"metrics.sinks[2]: unknown sink 'tensorboard'; valid: {SINKS}",
        "blob_store.files.root: expected a string, got 3 (int)",
        "hub.huggingface.timout: unknown setting (did you mean 'timeout'?); "
        "valid: cache_dir, endpoint, offline, timeout, token",
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "metrics.sinks=noop",
            "metrics.sinks: expected a list of sink names such as [noop], got 'noop' (str); "
            f"valid: {SINKS}",
        ),
        ("metrics.sinks=[]", "metrics.sinks: is empty; list at least one sink (noop logs nothing)"),
        ("metrics.sinks=[3]", "metrics.sinks[0]: expected a sink name, got 3 (int)"),
        (
            "metrics.backend=noop",
            "metrics.backend: metrics has no single backend; "
            "list sink names instead, e.g. sinks: [noop]",
        ),
        (
            "metrics.nop={}",
            f"metrics.nop: unknown key (did you mean 'noop'?); valid: sinks, run_dir, {SINKS}",
        ),
        (
            "training.torch={}",
            "training.torch: unknown key (did you mean 'local_torch'?); "
            "valid: backend, local_torch, noop, tinker",
        ),
        (
            "training.backend=",
            "training.backend: expected a backend name, got null; valid: local_torch, noop, tinker",
        ),
        ("training=3", "training: expected a mapping with `backend: ...`, got 3 (int)"),
        ("training.noop=[1]", "training.noop: expected a mapping of settings, got [1] (list)"),
        (
            "training.noop.x=1",
            "training.noop.x: unknown setting; valid: none (this backend takes no settings)",
        ),
        ("=noop", "override with an empty key: expected key=value, e.g. training.backend=noop"),
        (
            "training..backend=noop",
            "override 'training..backend': a dotted key cannot have an empty segment",
        ),
        (
            "training.backend.x=noop",
            "override 'training.backend.x': training.backend is not a mapping, "
            "so it has no key 'x'",
        ),
        (
            "training.backend=[noop",
            "override 'training.backend': the value after '=' is not valid YAML",
        ),
    ],
)
def test_bad_input_messages(override: str, expected: str) -> None:
    assert _problems(override) == [expected]


def test_missing_backend_key_lists_valid_backends(tmp_path: Path) -> None:
    # A user file cannot delete keys, so build the broken block through an override.
    assert _problems("vector_store={backend: null}") == [
        "vector_store.backend: expected a backend name, got null; valid: memory, noop"
    ]


# --- environment interpolation ------------------------------------------------------------


def test_env_value_with_newlines_cannot_add_keys() -> None:
    injected = "https://hub.example\ninjected: 1\noffline: true"
    resolved = load_config(
        overrides=["hub.huggingface.endpoint=${EP}"], environ={"EP": injected}, base_dir=Path("/")
    )
    hub = resolved.as_dict()["hub"]["huggingface"]
    assert hub["endpoint"] == injected
    assert set(hub) == {"endpoint", "cache_dir", "token", "offline", "timeout"}
    assert hub["offline"] is False


def test_env_value_with_newlines_in_a_backend_name_stays_one_problem_line() -> None:
    problems = _problems("training.backend=${B}", env={"B": "noop\nextra: 1"})
    assert problems == [
        "training.backend: unknown backend 'noop\\nextra: 1'; valid: local_torch, noop, tinker"
    ]
    assert "\n" not in problems[0]


def test_unset_variable_in_sinks_is_reported_once() -> None:
    assert _problems('metrics.sinks=["${SINK}"]') == [
        "metrics.sinks[0]: environment variable SINK is not set "
        "(referenced as '${SINK}'; export it or write ${NAME:default})"
    ]
    resolved = load_config(
        overrides=['metrics.sinks=["${SINK:noop}"]'], environ={}, base_dir=Path("/")
    )
    assert resolved.backends()["metrics"] == ["noop"]


def test_whole_leaf_references_are_converted_to_the_schema_type() -> None:
    resolved = load_config(
        overrides=[
            "hub.huggingface.timeout=${T:5}",
            "hub.huggingface.offline=${OFF}",
            "vector_store.memory.dimension=${DIM}",
        ],
        environ={"OFF": "true", "DIM": "12"},
        base_dir=Path("/"),
    )
    data = resolved.as_dict()
    assert data["hub"]["huggingface"]["timeout"] == 5.0
    assert data["hub"]["huggingface"]["offline"] is True
    assert data["vector_store"]["memory"]["dimension"] == 12


def test_partial_references_stay_strings() -> None:
    resolved = load_config(
        overrides=["hub.huggingface.endpoint=http://${HOST}:${PORT:8080}"],
        environ={"HOST": "mirror"},
        base_dir=Path("/"),
    )
    assert resolved.as_dict()["hub"]["huggingface"]["endpoint"] == "http://mirror:8080"


def test_backend_can_come_from_the_environment(builds: Builds) -> None:
    resolved = load_config(
        overrides=["training.backend=${CT_BACKEND:noop}"],
        environ={"CT_BACKEND": "beta"},
        base_dir=Path("/"),
    )
    assert resolved.backends()["training"] == "beta"
    default = load_config(
        overrides=["training.backend=${CT_BACKEND:noop}"], environ={}, base_dir=Path("/")
    )
    assert default.backends()["training"] == "noop"


def test_bad_env_values_name_key_variable_and_expected_type() -> None:
    assert _problems("hub.huggingface.timeout=${T}", env={"T": "soon"}) == [
        "hub.huggingface.timeout: expected a number, but '${T}' gives a value that is not one"
    ]
    assert _problems("hub.huggingface.timeout=x${T}", env={"T": "soon"}) == [
        "hub.huggingface.timeout: expected a number, got a value of type str"
    ]
    assert _problems("hub.huggingface.endpoint=${EP}") == [
        "hub.huggingface.endpoint: environment variable EP is not set "
        "(referenced as '${EP}'; export it or write ${NAME:default})"
    ]


def test_references_are_not_interpolated_in_keys_or_text_before_parsing(tmp_path: Path) -> None:
    user = _write(tmp_path / "u.yaml", "hub:\n  huggingface:\n    endpoint: ${EP}\n")
    resolved = load_config(user, environ={"EP": "x: 1\ny: 2"}, base_dir=tmp_path)
    assert resolved.as_dict()["hub"]["huggingface"]["endpoint"] == "x: 1\ny: 2"


# --- secrets never leak ----------------------------------------------------------------------


def test_secrets_never_appear_in_repr_dumps_or_messages(builds: Builds) -> None:
    env = {"HF_TOKEN": SECRET, "CT_TEST_API_KEY": SECRET}
    resolved = load_config(overrides=["training.backend=keyed"], environ=env, base_dir=Path("/"))
    assert isinstance(resolved, ResolvedConfig)
    for shown in (repr(resolved), str(resolved), str(resolved.as_dict()), resolved.to_yaml()):
        assert SECRET not in shown
    assert resolved.as_dict()["hub"]["huggingface"]["token"] == "***"
    assert resolved.as_dict()["training"]["keyed"]["api_key"] == "***"
    assert "token: '***'" in resolved.to_yaml()
    # An error elsewhere in the same config does not bring the secret along.
    with pytest.raises(ConfigurationError) as info:
        load_config(
            overrides=["training.backend=keyed", "training.keyed.retries=${CT_TEST_API_KEY}"],
            environ=env,
            base_dir=Path("/"),
        )
    assert "training.keyed.retries" in str(info.value)
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        load_config(
            overrides=[f"hub.huggingface.token.x={SECRET}"], environ=env, base_dir=Path("/")
        )
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.problems)


def test_to_yaml_round_trips_with_absolute_paths(tmp_path: Path) -> None:
    resolved = load_config(environ={}, base_dir=tmp_path)
    text = resolved.to_yaml()
    assert text.startswith("# from: ")
    reloaded = yaml.safe_load(text)
    assert reloaded == resolved.as_dict()
    assert os.path.isabs(reloaded["blob_store"]["files"]["root"])


@pytest.mark.parametrize("text", ["1e-4", "1E-4", "+1e-4", "0.0001"])
def test_exponent_floats_without_a_dot_are_numbers(text: str) -> None:
    """YAML 1.1 reads ``1e-4`` as a string; learning rates are written that way."""
    resolved = load_config(overrides=[f"train.rl.learning_rate={text}"])
    assert resolved.as_dict()["train"]["rl"]["learning_rate"] == pytest.approx(1e-4)
