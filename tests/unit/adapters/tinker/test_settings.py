"""TinkerSettings, its containers.yaml blocks and the adapters' construction checks."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest

from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.container import BACKENDS, load_config
from crucible_train.errors import AdapterUnavailableError, ConfigurationError

ROOT = pathlib.Path(__file__).resolve().parents[4]
PORTS = ("training", "sampling", "model_info", "tokenizer")


def test_settings_mask_the_key_and_validate_their_fields():
    settings = TinkerSettings(base_model="Qwen/Qwen3-8B", api_key="tml-settings-secret")
    assert "tml-settings-secret" not in repr(settings)
    assert (settings.lora_rank, settings.base_url, settings.future_timeout_s) == (32, None, None)
    with pytest.raises(ConfigurationError, match="tinker://"):
        TinkerSettings(base_model="m", api_key="tml-x", model_path="/local/checkpoint")
    with pytest.raises(ValueError, match="http"):
        TinkerSettings(base_model="m", api_key="tml-x", base_url="localhost:8000")
    with pytest.raises(ConfigurationError, match="lora_rank"):
        TinkerSettings(base_model="m", api_key="tml-x", lora_rank=0)


def test_every_tinker_port_shares_one_schema():
    assert {port: BACKENDS[port]["tinker"].settings for port in PORTS} == dict.fromkeys(
        PORTS, TinkerSettings
    )


def _uncommented(text: str) -> str:
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("  # tinker:"):
            inside = True
        elif not line.startswith("  #   "):
            inside = False
        out.append("  " + line[4:] if inside else line)
    return "\n".join(out) + "\n"


def test_the_commented_tinker_blocks_are_valid_once_uncommented(tmp_path):
    text = (ROOT / "containers.yaml").read_text("utf-8")
    assert sum(line.startswith("  # tinker:") for line in text.splitlines()) == len(PORTS)
    (tmp_path / "all.yaml").write_text(_uncommented(text), encoding="utf-8")
    overrides = [f"{port}.backend=tinker" for port in PORTS]
    overrides += [f"{port}.tinker.base_model=org/model" for port in PORTS]
    resolved = load_config(
        config_file="all.yaml",
        overrides=overrides,
        environ={"TINKER_API_KEY": "tml-from-the-environment"},
        base_dir=tmp_path,
    )
    block = resolved.as_dict()["training"]["tinker"]
    assert set(block) == {field.name for field in TinkerSettings.__attrs_attrs__}
    assert block["lora_rank"] == 32
    assert "tml-from-the-environment" not in str(resolved.as_dict())  # shown masked


def test_a_selected_tinker_backend_needs_base_model_and_key(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_config(overrides=["training.backend=tinker"], environ={}, base_dir=tmp_path)
    message = str(caught.value)
    assert "training.tinker.base_model" in message
    assert "TINKER_API_KEY" in message


@pytest.mark.parametrize("port", PORTS)
def test_adapters_refuse_incomplete_settings_without_showing_the_key(port):
    pytest.importorskip("tinker")
    adapter: Any = BACKENDS[port]["tinker"].adapter
    with pytest.raises(ConfigurationError, match="base_model") as caught:
        adapter(api_key="tml-never-shown-9876")
    assert "tml-never-shown-9876" not in str(caught.value)


@pytest.mark.parametrize("port", PORTS)
def test_a_missing_sdk_names_the_extra(port, monkeypatch):
    # None in sys.modules makes every import of the package fail, as if uninstalled.
    monkeypatch.setitem(sys.modules, "tinker", None)
    adapter: Any = BACKENDS[port]["tinker"].adapter
    with pytest.raises(AdapterUnavailableError) as caught:
        adapter(base_model="org/model", api_key="tml-x")
    assert "pip install 'crucible-train[tinker]'" in str(caught.value)
    assert f"{port}.backend: noop" in str(caught.value)
