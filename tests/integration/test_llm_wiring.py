"""Integration: the llm.openai_compat and embedding.sentence_transformers backends in the
container (settings, secrets, http injection, and the "needs HTTP" check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient
from crucible_train.container import build_container, load_config
from crucible_train.errors import ConfigurationError, MissingSecretError
from servers.fake_openai import API_KEY, FakeOpenAI

SELECT = ["llm.backend=openai_compat", "llm.openai_compat.model=fake-model"]


def test_defaults_stay_noop(tmp_path: Path) -> None:
    backends = load_config(environ={}, base_dir=tmp_path).backends()
    assert (backends["llm"], backends["embedding"]) == ("noop", "noop")


def test_openai_compat_settings_and_defaults(tmp_path: Path) -> None:
    resolved = load_config(overrides=SELECT, environ={}, base_dir=tmp_path)
    assert resolved.as_dict()["llm"]["openai_compat"] == {
        "base_url": "http://127.0.0.1:8000/v1",
        "model": "fake-model",
        "api_key": None,  # optional secret, unset: fine for local servers
        "timeout_s": 60.0,
        "max_retries": 4,
        "min_backoff_s": 0.5,
        "max_backoff_s": 20.0,
    }


def test_model_is_required_when_selected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"llm\.openai_compat\.model"):
        load_config(overrides=["llm.backend=openai_compat"], environ={}, base_dir=tmp_path)


def test_api_key_comes_from_the_environment_and_is_masked(tmp_path: Path) -> None:
    resolved = load_config(overrides=SELECT, environ={"OPENAI_API_KEY": API_KEY}, base_dir=tmp_path)
    assert resolved.as_dict()["llm"]["openai_compat"]["api_key"] == "***"
    assert API_KEY not in resolved.to_yaml()
    assert API_KEY not in repr(resolved)


def test_a_literal_api_key_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(
            overrides=[*SELECT, f"llm.openai_compat.api_key={API_KEY}"],
            environ={},
            base_dir=tmp_path,
        )
    assert "must come from environment variables" in str(info.value)
    assert API_KEY not in str(info.value)
    assert not isinstance(info.value, MissingSecretError)


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("llm.openai_compat.base_url=localhost:8000", "must start with http:// or https://"),
        ("llm.openai_compat.max_retries=-1", "must be at least 0"),
        ("llm.openai_compat.timeout_s=0", "must be greater than 0"),
        ("embedding.sentence_transformers.batch_size=0", "must be greater than 0"),
        ("embedding.sentence_transformers.model=' '", "must not be empty"),
    ],
)
def test_bad_settings_are_reported(tmp_path: Path, override: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        load_config(overrides=[*SELECT, override], environ={}, base_dir=tmp_path)


def test_needs_a_real_http_backend(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(overrides=[*SELECT, "http.backend=noop"], environ={}, base_dir=tmp_path)
    assert str(info.value) == (
        "llm.backend: backend 'openai_compat' sends its requests over HTTP, "
        "but http.backend is 'noop'; set http.backend: requests"
    )


def test_container_injects_the_shared_http_client_and_the_client_works(tmp_path: Path) -> None:
    with FakeOpenAI(api_key=API_KEY) as server:
        container = build_container(
            overrides=[*SELECT, f"llm.openai_compat.base_url={server.url}"],
            environ={"OPENAI_API_KEY": API_KEY},
            base_dir=tmp_path,
        )
        try:
            llm = container.llm()
            assert isinstance(llm, OpenAICompatLLMClient)
            assert llm._http is container.http()
            assert llm.chat([{"role": "user", "content": "hi"}]).text == "echo: hi"
        finally:
            container.shutdown_resources()


def test_sentence_transformers_settings_defaults(tmp_path: Path) -> None:
    resolved = load_config(
        overrides=["embedding.backend=sentence_transformers"], environ={}, base_dir=tmp_path
    )
    assert resolved.as_dict()["embedding"]["sentence_transformers"] == {
        "model": "all-MiniLM-L6-v2",
        "device": "cpu",
        "batch_size": 64,
        "normalize": False,
    }


def test_the_commented_sub_blocks_are_valid_once_uncommented(tmp_path: Path) -> None:
    # Users switch backends by uncommenting; the commented text must stay a valid block.
    text = (Path(__file__).resolve().parents[2] / "containers.yaml").read_text("utf-8")
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith(("  # openai_compat:", "  # sentence_transformers:")):
            inside = True
        elif not line.startswith("  #   "):
            inside = False
        out.append("  " + line[4:] if inside else line)
    (tmp_path / "all.yaml").write_text("\n".join(out) + "\n", encoding="utf-8")
    resolved = load_config(
        config_file="all.yaml",
        overrides=[
            "llm.backend=openai_compat",
            "llm.openai_compat.model=m",
            "embedding.backend=sentence_transformers",
        ],
        environ={},
        base_dir=tmp_path,
    )
    assert resolved.as_dict()["llm"]["openai_compat"]["max_backoff_s"] == 20.0
    assert resolved.as_dict()["embedding"]["sentence_transformers"]["batch_size"] == 64
