"""Settings schemas of the HTTP client and the metrics sinks, and fields that are only
required once their backend is selected."""

from __future__ import annotations

import attrs
import pytest

from crucible_train.adapters.console.settings import ConsoleMetricsSinkSettings
from crucible_train.adapters.files.settings import FilesMetricsSinkSettings
from crucible_train.adapters.neptune.settings import NeptuneMetricsSinkSettings
from crucible_train.adapters.requests_http.settings import RequestsHttpSettings
from crucible_train.adapters.wandb.settings import WandbMetricsSinkSettings
from crucible_train.config import (
    field_specs,
    redact,
    required_when_selected_field,
    unset_required_fields,
    validate_settings,
)
from crucible_train.container.settings import MetricsSettings

SECRET = "wb_Settings_Secret_8080"


@pytest.mark.parametrize(
    "schema",
    [
        RequestsHttpSettings,
        MetricsSettings,
        FilesMetricsSinkSettings,
        ConsoleMetricsSinkSettings,
    ],
)
def test_schemas_without_secrets_validate_with_defaults(schema):
    instance, problems = validate_settings(schema, {}, "x")
    assert problems == []
    assert isinstance(instance, schema)


@pytest.mark.parametrize(
    ("schema", "secret", "env"),
    [
        (WandbMetricsSinkSettings, "api_key", "WANDB_API_KEY"),
        (NeptuneMetricsSinkSettings, "api_token", "NEPTUNE_API_TOKEN"),
    ],
)
def test_remote_sinks_have_a_required_env_secret_and_a_needed_project(schema, secret, env):
    specs = field_specs(schema)
    assert specs[secret].secret_env == env
    assert specs[secret].required
    assert specs["project"].required_when_selected
    assert not specs["project"].required
    instance, problems = validate_settings(schema, {secret: SECRET}, "metrics.x")
    assert problems == []
    assert unset_required_fields(schema, instance, "metrics.x") == [
        "metrics.x.project: must be set when this backend is selected; expected a string"
    ]
    assert SECRET not in repr(instance)
    assert redact({secret: SECRET, "project": "p"}, schema) == {secret: "***", "project": "p"}


@pytest.mark.parametrize(
    ("schema", "values", "expected"),
    [
        (RequestsHttpSettings, {"pool_size": 0}, "h.pool_size: must be greater than 0, got 0"),
        (RequestsHttpSettings, {"user_agent": ""}, "h.user_agent: must not be empty"),
        (MetricsSettings, {"run_dir": ""}, "h.run_dir: must not be empty"),
        (ConsoleMetricsSinkSettings, {"width": 0}, "h.width: must be greater than 0, got 0"),
        (
            WandbMetricsSinkSettings,
            {"api_key": SECRET, "base_url": "api.wandb.ai"},
            "h.base_url: must start with http:// or https://, got 'api.wandb.ai'",
        ),
        (
            WandbMetricsSinkSettings,
            {"api_key": SECRET, "close_timeout_s": -1},
            "h.close_timeout_s: must be at least 0, got -1.0",
        ),
        (
            WandbMetricsSinkSettings,
            {"api_key": SECRET, "project": " "},
            "h.project: must not be empty",
        ),
        (
            NeptuneMetricsSinkSettings,
            {"api_token": SECRET, "project": "a/b/c"},
            "h.project: expected 'workspace/project', got 'a/b/c'",
        ),
        (
            NeptuneMetricsSinkSettings,
            {"api_token": SECRET, "tags": "one"},
            "h.tags: expected a list of strings, got 'one' (str)",
        ),
    ],
)
def test_invalid_values(schema, values, expected):
    instance, problems = validate_settings(schema, values, "h")
    assert instance is None
    assert problems == [expected]


def test_neptune_accepts_workspace_project_and_tags():
    instance, problems = validate_settings(
        NeptuneMetricsSinkSettings,
        {"api_token": SECRET, "project": "ws/proj", "tags": ["a", "b"]},
        "h",
    )
    assert problems == []
    assert instance.tags == ["a", "b"]
    assert unset_required_fields(NeptuneMetricsSinkSettings, instance, "h") == []


@attrs.frozen(kw_only=True)
class Needy:
    count: int | None = required_when_selected_field()
    name: str | None = None


def test_unset_required_fields_describes_the_non_null_type():
    instance, _ = validate_settings(Needy, {}, "p.needy")
    expected = ["p.needy.count: must be set when this backend is selected; expected a whole number"]
    assert unset_required_fields(Needy, instance, "p.needy") == expected
    assert unset_required_fields(Needy, {"name": "x"}, "p.needy") == expected
    assert unset_required_fields(Needy, Needy(count=3), "p.needy") == []
    assert unset_required_fields(Needy, {"count": 3}, "p.needy") == []
