"""The wiring diagram is the one list of backends: everything else is derived from it."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import attrs
import pytest

from crucible_train import config
from crucible_train.adapters.noop import NoopTrainingClient
from crucible_train.adapters.noop.settings import NoopSettings
from crucible_train.adapters.requests_http.settings import RequestsHttpSettings
from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.config import field_specs
from crucible_train.container import (
    BACKENDS,
    AppContainer,
    Backend,
    backend,
    backends_of,
    build_container,
    load_config,
)
from crucible_train.container.backends import BackendProvider, describe_branches
from crucible_train.errors import ConfigurationError
from crucible_train.ports import PORTS

from extra_backends import branch, extra_backends


def test_backends_are_read_from_the_selectors() -> None:
    assert list(BACKENDS) == list(PORTS)
    for port in PORTS:
        selector = AppContainer.metrics_sink if port == "metrics" else getattr(AppContainer, port)
        assert set(BACKENDS[port]) == set(selector.providers)
    tinker = BACKENDS["training"]["tinker"]
    assert tinker == Backend(
        adapter=AppContainer.training.providers["tinker"].provides,
        settings=TinkerSettings,
        injected=(),
    )
    assert BACKENDS["llm"]["openai_compat"].talks_http
    assert BACKENDS["metrics"]["wandb"].injected == ("http", "run_dir")
    assert BACKENDS["metrics"]["files"].injected == ("run_dir",)
    assert not BACKENDS["metrics"]["console"].talks_http


def test_backends_mapping_is_read_only() -> None:
    noop = Backend(adapter=object, settings=NoopSettings)
    with pytest.raises(TypeError):
        BACKENDS["training"]["x"] = noop  # type: ignore[index]
    with pytest.raises(TypeError):
        BACKENDS["x"] = {"noop": noop}  # type: ignore[index]
    assert backends_of(AppContainer) == {port: dict(BACKENDS[port]) for port in BACKENDS}


def test_a_backend_added_to_the_diagram_is_validated_listed_and_built(tmp_path: Path) -> None:
    class Echo(NoopTrainingClient):
        def __init__(self, *, pool_size: int, default_timeout: float, user_agent: str) -> None:
            super().__init__()
            self.pool_size = pool_size

    with extra_backends("training", echo=branch("training", "echo", Echo, RequestsHttpSettings)):
        assert "echo" in BACKENDS["training"]
        with pytest.raises(ConfigurationError, match="valid: echo, local_torch, noop, tinker"):
            load_config(overrides=["training.backend=nope"], environ={}, base_dir=tmp_path)
        with pytest.raises(ConfigurationError, match=r"training\.echo\.pool_size: must be greater"):
            load_config(overrides=["training.echo.pool_size=0"], environ={}, base_dir=tmp_path)
        container = build_container(
            overrides=["training.backend=echo", "training.echo.pool_size=3"],
            environ={},
            base_dir=tmp_path,
        )
        built = container.training()
        assert isinstance(built, Echo)
        assert built.pool_size == 3
    assert "echo" not in BACKENDS["training"]


def test_backend_builds_one_singleton_from_its_block() -> None:
    provider = backend(dict, RequestsHttpSettings, AppContainer.config.http.requests)
    assert isinstance(provider, BackendProvider)
    assert set(provider.kwargs) == {"pool_size", "default_timeout", "user_agent"}
    assert provider.settings is RequestsHttpSettings
    assert provider.injected == ()


def test_backend_refuses_an_injection_the_diagram_cannot_make() -> None:
    with pytest.raises(TypeError, match="cannot inject"):
        backend(dict, NoopSettings, AppContainer.config.x.y, token=AppContainer.http)
    with pytest.raises(TypeError, match="cannot inject"):
        # http is both injected and a settings field: one of them would be lost.
        backend(dict, _HttpField, AppContainer.config.x.y, http=AppContainer.http)


@attrs.frozen(kw_only=True)
class _HttpField:
    http: str = "x"


def test_describe_branches_refuses_a_provider_not_made_by_backend() -> None:
    from dependency_injector import providers

    with pytest.raises(TypeError, match=r"container\.backend"):
        describe_branches({"raw": providers.Singleton(dict)})


def test_old_settings_imports_still_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"adapters\.tinker\.settings"):
        moved = config.TinkerSettings  # type: ignore[attr-defined]
    assert moved is TinkerSettings
    from crucible_train.recipes.settings import TrainSettings

    with pytest.warns(DeprecationWarning, match=r"recipes\.settings"):
        assert config.TrainSettings is TrainSettings  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        config.NoSuchSettings  # type: ignore[attr-defined]  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.not_blank is config.not_blank  # the field helpers warn about nothing


# The byte-level settings default to the embedded profile (the qwen3 renderers' tokens);
# the adapter's own defaults stay the bare four-token vocabulary for code that builds it.
PROFILE_DEFAULTS = {("tokenizer", "byte_level")}


def test_adapter_keyword_defaults_agree_with_the_settings_classes() -> None:
    disagree = []
    for port, backends in BACKENDS.items():
        for name, described in backends.items():
            if (port, name) in PROFILE_DEFAULTS:
                continue
            parameters = inspect.signature(described.adapter).parameters
            for field, spec in field_specs(described.settings).items():
                given = parameters[field].default
                if given is inspect.Parameter.empty or spec.is_secret:
                    continue  # the adapter needs it; the container always passes it
                default = spec.default
                if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                    default = default.factory()
                as_list = (list, tuple)
                if isinstance(given, as_list) and isinstance(default, as_list):
                    given, default = list(given), list(default)
                if given != default:
                    disagree.append(
                        f"{port}.{name}.{field}: adapter {given!r}, settings {default!r}"
                    )
    assert disagree == []
