"""Tests for crucible_train.config: settings introspection, validation, env coercion, redaction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_train.adapters.files.settings import FilesBlobStoreSettings, FilesDatasetStoreSettings
from crucible_train.adapters.huggingface.settings import HuggingFaceHubSettings
from crucible_train.adapters.memory.settings import MemoryVectorStoreSettings
from crucible_train.adapters.noop.settings import NoopSettings
from crucible_train.config import (
    REDACTED,
    coerce_env_text,
    field_specs,
    path_field,
    redact,
    resolve_path_fields,
    secret_field,
    settings_to_dict,
    validate_settings,
)

SECRET = "hf_Distinctive_S3cret_value_9182"


@attrs.frozen(kw_only=True)
class KitchenSink:
    """A test schema using every supported annotation."""

    name: str
    count: int = 1
    ratio: float = 0.5
    enabled: bool = False
    label: str | None = None
    tags: list[str] = attrs.field(factory=list)
    mode: Literal["fast", "slow"] = "fast"
    api_key: str = secret_field(env="CT_KITCHEN_KEY")
    workdir: str = path_field(default="work")


def _kitchen(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {"name": "x", "api_key": "k"}
    values.update(overrides)
    return values


# --- field_specs --------------------------------------------------------------------------


def test_field_specs_reads_annotations_secrets_and_paths() -> None:
    specs = field_specs(HuggingFaceHubSettings)
    assert list(specs) == ["endpoint", "cache_dir", "token", "offline", "timeout"]
    assert specs["token"].is_secret
    assert specs["token"].secret_env == "HF_TOKEN"
    assert not specs["token"].required
    assert specs["cache_dir"].is_path
    assert specs["timeout"].type is float
    assert specs["endpoint"].accepts_none
    assert not specs["offline"].accepts_none


def test_field_specs_marks_required_fields() -> None:
    specs = field_specs(KitchenSink)
    assert specs["name"].required
    assert specs["api_key"].required
    assert specs["api_key"].is_secret
    assert not specs["count"].required


def test_field_specs_rejects_non_attrs_classes() -> None:
    with pytest.raises(TypeError, match="not an attrs class"):
        field_specs(dict)


def test_field_specs_rejects_unsupported_annotations() -> None:
    @attrs.frozen(kw_only=True)
    class Bad:
        pairs: set[int] = attrs.field(factory=set)

    with pytest.raises(TypeError, match="unsupported settings annotation"):
        field_specs(Bad)


def test_mapping_settings_accept_a_mapping_and_name_the_key_otherwise() -> None:
    # Recipe settings such as DistillConfig.student are free-form mappings.
    @attrs.frozen(kw_only=True)
    class WithMapping:
        student: dict[str, Any] = attrs.field(factory=dict)

    instance, problems = validate_settings(WithMapping, {"student": {"hidden_size": 64}}, "x")
    assert problems == []
    assert instance is not None
    assert instance.student == {"hidden_size": 64}
    _, problems = validate_settings(WithMapping, {"student": [1]}, "x")
    assert len(problems) == 1
    assert "x.student" in problems[0]
    assert "a mapping" in problems[0]


# --- validate_settings: the good path -----------------------------------------------------


def test_defaults_fill_in_for_an_empty_block() -> None:
    instance, problems = validate_settings(FilesBlobStoreSettings, {}, "blob_store.files")
    assert problems == []
    assert instance == FilesBlobStoreSettings(root="runs/blobs")


def test_none_block_counts_as_empty() -> None:
    instance, problems = validate_settings(NoopSettings, None, "training.noop")
    assert (instance, problems) == (NoopSettings(), [])


def test_every_shipped_schema_validates_with_defaults() -> None:
    for schema in (
        NoopSettings,
        FilesBlobStoreSettings,
        FilesDatasetStoreSettings,
        MemoryVectorStoreSettings,
        HuggingFaceHubSettings,
    ):
        instance, problems = validate_settings(schema, {}, "x")
        assert problems == []
        assert isinstance(instance, schema)


def test_int_is_accepted_and_converted_for_float() -> None:
    instance, problems = validate_settings(
        HuggingFaceHubSettings, {"timeout": 3}, "hub.huggingface"
    )
    assert problems == []
    assert isinstance(instance, HuggingFaceHubSettings)
    assert instance.timeout == 3.0
    assert isinstance(instance.timeout, float)


def test_all_supported_annotations_accept_valid_values() -> None:
    values = _kitchen(count=3, ratio=2, enabled=True, label=None, tags=["a", "b"], mode="slow")
    instance, problems = validate_settings(KitchenSink, values, "k")
    assert problems == []
    assert isinstance(instance, KitchenSink)
    assert instance.tags == ["a", "b"]
    assert instance.mode == "slow"
    assert instance.ratio == 2.0


# --- validate_settings: problems ----------------------------------------------------------


def test_wrong_type_names_key_expected_type_and_value() -> None:
    instance, problems = validate_settings(FilesBlobStoreSettings, {"root": 3}, "blob_store.files")
    assert instance is None
    assert problems == ["blob_store.files.root: expected a string, got 3 (int)"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("count", True, "k.count: expected a whole number, got True (bool)"),
        ("count", 1.5, "k.count: expected a whole number, got 1.5 (float)"),
        ("ratio", False, "k.ratio: expected a number, got False (bool)"),
        ("ratio", "0.1", "k.ratio: expected a number, got '0.1' (str)"),
        ("enabled", "yes", "k.enabled: expected true or false, got 'yes' (str)"),
        ("enabled", 1, "k.enabled: expected true or false, got 1 (int)"),
        ("label", 7, "k.label: expected a string or null, got 7 (int)"),
        ("tags", "a", "k.tags: expected a list of strings, got 'a' (str)"),
        ("tags", ["a", 2], "k.tags: expected a list of strings, got ['a', 2] (list)"),
        ("mode", "medium", "k.mode: expected one of 'fast', 'slow', got 'medium' (str)"),
        ("name", None, "k.name: expected a string, got null"),
    ],
)
def test_type_checks_follow_the_annotations(key: str, value: object, expected: str) -> None:
    instance, problems = validate_settings(KitchenSink, _kitchen(**{key: value}), "k")
    assert instance is None
    assert problems == [expected]


def test_unknown_key_suggests_a_close_match_and_lists_valid_keys() -> None:
    _, problems = validate_settings(HuggingFaceHubSettings, {"timout": 3}, "hub.huggingface")
    assert problems == [
        "hub.huggingface.timout: unknown setting (did you mean 'timeout'?); "
        "valid: cache_dir, endpoint, offline, timeout, token"
    ]


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    _, problems = validate_settings(NoopSettings, {"zzz": 1}, "training.noop")
    assert problems == [
        "training.noop.zzz: unknown setting; valid: none (this backend takes no settings)"
    ]


def test_missing_required_keys_are_reported() -> None:
    _, problems = validate_settings(KitchenSink, {}, "k")
    assert "k.name: missing required setting; expected a string" in problems
    assert "k.api_key: missing required secret; set it to ${CT_KITCHEN_KEY}" in problems


def test_allow_missing_skips_the_problem_but_builds_nothing() -> None:
    instance, problems = validate_settings(
        KitchenSink, {"name": "x"}, "k", allow_missing={"api_key"}
    )
    assert (instance, problems) == (None, [])


def test_every_problem_is_reported_together() -> None:
    values = {"name": 1, "count": "two", "colour": "red", "mode": "medium"}
    _, problems = validate_settings(KitchenSink, values, "k")
    assert len(problems) == 5  # name, count, colour, mode, missing api_key
    assert all(problem.startswith("k.") for problem in problems)


def test_schema_validators_run_after_type_checks() -> None:
    _, problems = validate_settings(HuggingFaceHubSettings, {"timeout": 0}, "hub.huggingface")
    assert problems == ["hub.huggingface.timeout: must be greater than 0, got 0.0"]
    _, problems = validate_settings(MemoryVectorStoreSettings, {"dimension": -4}, "v.memory")
    assert problems == ["v.memory.dimension: must be greater than 0, got -4"]


def test_a_non_mapping_block_is_a_problem() -> None:
    _, problems = validate_settings(FilesBlobStoreSettings, ["root"], "blob_store.files")
    assert problems == ["blob_store.files: expected a mapping of settings, got ['root'] (list)"]


def test_non_string_keys_are_a_problem() -> None:
    _, problems = validate_settings(NoopSettings, {1: "x"}, "training.noop")
    assert problems == ["training.noop: setting names must be strings, got 1 (int)"]


def test_secret_values_are_never_quoted() -> None:
    _, problems = validate_settings(HuggingFaceHubSettings, {"token": [SECRET]}, "hub.huggingface")
    assert problems == [
        "hub.huggingface.token: expected a string or null, got a value of type list"
    ]
    assert SECRET not in "".join(problems)


def test_long_values_are_cut_in_messages() -> None:
    _, problems = validate_settings(FilesBlobStoreSettings, {"root": ["x" * 500]}, "b.files")
    assert len(problems[0]) < 200


# --- repr ----------------------------------------------------------------------------------


def test_settings_repr_masks_secrets() -> None:
    settings = HuggingFaceHubSettings(token=SECRET)
    assert SECRET not in repr(settings)
    assert "token='***'" in repr(settings)
    assert "token=None" in repr(HuggingFaceHubSettings())


# --- coerce_env_text ----------------------------------------------------------------------


def _spec(schema: type, name: str):  # type: ignore[no-untyped-def]
    return field_specs(schema)[name]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("count", "42", 42),
        ("count", " 7 ", 7),
        ("ratio", "0.25", 0.25),
        ("ratio", "3", 3),
        ("enabled", "true", True),
        ("enabled", "No", False),
        ("enabled", "1", True),
        ("label", "", None),
        ("label", "hello", "hello"),
        ("name", "", ""),
        ("mode", "slow", "slow"),
        ("mode", "medium", "medium"),  # kept as text; validate_settings reports the choice
    ],
)
def test_coerce_env_text_converts_to_the_field_type(name: str, text: str, expected: object) -> None:
    value = coerce_env_text(_spec(KitchenSink, name), text)
    assert value == expected
    assert type(value) is type(expected)


def test_coerce_env_text_names_the_type_but_never_the_value() -> None:
    with pytest.raises(ValueError, match=r"^expected a whole number$"):
        coerce_env_text(_spec(KitchenSink, "count"), "many")
    with pytest.raises(ValueError, match=r"^expected true or false$"):
        coerce_env_text(_spec(KitchenSink, "enabled"), "maybe")


def test_unquoted_keys_hide_their_values() -> None:
    _, problems = validate_settings(
        KitchenSink, _kitchen(count="x" + SECRET), "k", unquoted={"count"}
    )
    assert problems == ["k.count: expected a whole number, got a value of type str"]


def test_coerce_env_text_treats_optional_numbers_as_none_when_empty() -> None:
    assert coerce_env_text(_spec(MemoryVectorStoreSettings, "dimension"), "") is None
    assert coerce_env_text(_spec(MemoryVectorStoreSettings, "dimension"), "16") == 16


# --- paths ----------------------------------------------------------------------------------


def test_resolve_path_fields_makes_relative_paths_absolute(tmp_path: Path) -> None:
    resolved = resolve_path_fields(FilesBlobStoreSettings(root="runs/./blobs"), tmp_path)
    assert resolved.root == str(tmp_path / "runs" / "blobs")
    assert resolve_path_fields(FilesDatasetStoreSettings(root="."), tmp_path).root == str(tmp_path)


def test_resolve_path_fields_keeps_absolute_paths_and_none(tmp_path: Path) -> None:
    absolute = str(tmp_path / "elsewhere")
    assert resolve_path_fields(FilesBlobStoreSettings(root=absolute), "/ignored").root == absolute
    hub = resolve_path_fields(HuggingFaceHubSettings(), tmp_path)
    assert hub.cache_dir is None


def test_resolve_path_fields_expands_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    resolved = resolve_path_fields(FilesBlobStoreSettings(root="~/blobs"), "/ignored")
    assert resolved.root == os.path.join(str(tmp_path / "home"), "blobs")


def test_resolve_path_fields_leaves_non_path_fields_alone(tmp_path: Path) -> None:
    hub = resolve_path_fields(HuggingFaceHubSettings(endpoint="relative/url"), tmp_path)
    assert hub.endpoint == "relative/url"


def test_settings_to_dict_lists_every_field() -> None:
    assert settings_to_dict(HuggingFaceHubSettings(token=SECRET)) == {
        "endpoint": None,
        "cache_dir": None,
        "token": SECRET,
        "offline": False,
        "timeout": 10.0,
    }


# --- redact -----------------------------------------------------------------------------------


def test_redact_masks_schema_secrets_and_keeps_unset_ones_visible() -> None:
    shown = redact({"token": SECRET, "offline": True}, HuggingFaceHubSettings)
    assert shown == {"token": REDACTED, "offline": True}
    assert redact({"token": None}, HuggingFaceHubSettings) == {"token": None}


def test_redact_masks_dotted_secret_keys_in_nested_mappings() -> None:
    config = {"hub": {"backend": "huggingface", "huggingface": {"token": SECRET, "tags": ["a"]}}}
    shown = redact(config, secret_keys={"hub.huggingface.token"})
    assert shown["hub"]["huggingface"] == {"token": REDACTED, "tags": ["a"]}
    assert config["hub"]["huggingface"]["token"] == SECRET  # the input is not changed
    shown["hub"]["huggingface"]["tags"].append("b")
    assert config["hub"]["huggingface"]["tags"] == ["a"]  # nor shared


def test_redact_without_secrets_is_a_deep_copy() -> None:
    config = {"a": {"b": [1, 2]}}
    shown = redact(config)
    assert shown == config
    assert shown["a"] is not config["a"]


@given(st.text(min_size=1))
def test_redact_never_shows_a_secret(secret: str) -> None:
    shown = redact({"x": {"token": secret}}, secret_keys={"x.token"})
    assert shown == {"x": {"token": REDACTED}}
