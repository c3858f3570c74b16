"""Unit tests for the Neptune sink's pure parts: API token, project name, operation bodies."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from crucible_train.adapters.neptune._auth import parse_api_token, parse_project
from crucible_train.adapters.neptune._operations import (
    MAX_SERIES_STRING_LENGTH,
    MAX_STRING_LENGTH,
    failed_operation,
    hparam_operations,
    merge_operations,
    metric_operations,
    start_operations,
    text_operation,
)
from crucible_train.errors import ConfigurationError, MetricsSinkError, MissingSecretError

SECRET_KEY = "sk-very-secret-api-key-0123456789"


def token_of(payload: object) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


# --- API token ------------------------------------------------------------------------------


def test_token_prefers_api_url_over_api_address():
    token = token_of(
        {"api_address": "https://a.example", "api_url": "https://b.example/", "api_key": "k"}
    )
    credentials = parse_api_token(token)
    assert credentials.api_url == "https://b.example"
    assert credentials.api_token == token


def test_token_falls_back_to_api_address():
    token = token_of({"api_address": "https://a.example", "api_key": "k"})
    assert parse_api_token(token).api_url == "https://a.example"


def test_api_url_argument_overrides_the_token():
    token = token_of({"api_address": "https://a.example", "api_key": "k"})
    assert parse_api_token(token, api_url="http://10.0.0.5:8080/").api_url == (
        "http://10.0.0.5:8080"
    )


def test_api_url_argument_rescues_a_token_without_address():
    token = token_of({"api_key": "k"})
    assert parse_api_token(token, api_url="https://n.example").api_url == "https://n.example"


def test_token_without_padding_is_accepted():
    token = token_of({"api_address": "https://a.example", "api_key": "kk"}).rstrip("=")
    assert parse_api_token(token).api_url == "https://a.example"


def test_credentials_repr_hides_the_token():
    token = token_of({"api_address": "https://a.example", "api_key": SECRET_KEY})
    credentials = parse_api_token(token)
    assert token not in repr(credentials)
    assert token not in str(credentials)


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_token_names_the_variable(token):
    with pytest.raises(MissingSecretError, match="NEPTUNE_API_TOKEN"):
        parse_api_token(token)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(f"not base64 at all! {SECRET_KEY}", "not valid base64", id="not-base64"),
        pytest.param(
            base64.b64encode(f"plain text {SECRET_KEY}".encode()).decode(),
            "not JSON",
            id="not-json",
        ),
        pytest.param(
            base64.b64encode(bytes([0xFF, 0xFE, 0x00]) + SECRET_KEY.encode()).decode(),
            "not JSON",
            id="not-utf8",
        ),
        pytest.param(token_of([SECRET_KEY]), "not an object", id="json-list"),
        pytest.param(token_of({"api_key": SECRET_KEY}), "no server address", id="no-address"),
        pytest.param(
            token_of({"api_address": "", "api_url": "", "api_key": SECRET_KEY}),
            "no server address",
            id="empty-address",
        ),
        pytest.param(
            token_of({"api_address": "ftp://x.example", "api_key": SECRET_KEY}),
            "http",
            id="not-http",
        ),
    ],
)
def test_malformed_token_says_what_is_wrong_without_echoing_it(token, reason):
    with pytest.raises(ConfigurationError, match=reason) as info:
        parse_api_token(token)
    message = str(info.value)
    assert token not in message
    assert SECRET_KEY not in message
    assert "NEPTUNE_API_TOKEN" in message or "api_url" in message
    # Nothing secret hides in the exception chain either.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_no_address_error_mentions_the_shutdown_and_api_url():
    with pytest.raises(ConfigurationError, match="api_url") as info:
        parse_api_token(token_of({"api_key": "k"}))
    assert "2026" in str(info.value)


# --- project ------------------------------------------------------------------------------


def test_project_is_split():
    assert parse_project("ws/proj") == ("ws", "proj")


@pytest.mark.parametrize("project", ["proj", "ws/", "/proj", "a/b/c", "", None, "ws/ pro j"])
def test_project_must_be_workspace_slash_project(project):
    with pytest.raises(ConfigurationError, match="workspace/project") as info:
        parse_project(project)
    assert "for example" in str(info.value)


# --- operations ----------------------------------------------------------------------------


def test_hparams_flatten_with_sdk_types():
    operations = hparam_operations(
        {
            "lr": 1e-4,
            "opt": {"name": "adamw", "betas": [0.9, 0.99], "fused": True},
            "epochs": 3,
            "seed": np.int64(7),
            "huge": 2**40,
            "bad": math.nan,
            "worse": -math.inf,
            "none": None,
            "empty": {},
        }
    )
    assert operations == [
        {"path": "parameters/lr", "assignFloat": {"value": 1e-4}},
        {"path": "parameters/opt/name", "assignString": {"value": "adamw"}},
        {"path": "parameters/opt/betas", "assignString": {"value": "[0.9, 0.99]"}},
        {"path": "parameters/opt/fused", "assignBool": {"value": True}},
        {"path": "parameters/epochs", "assignInt": {"value": 3}},
        {"path": "parameters/seed", "assignInt": {"value": 7}},
        {"path": "parameters/huge", "assignFloat": {"value": float(2**40)}},
        {"path": "parameters/bad", "assignString": {"value": "nan"}},
        {"path": "parameters/worse", "assignString": {"value": "-inf"}},
        {"path": "parameters/none", "assignString": {"value": "None"}},
    ]
    json.dumps(operations, allow_nan=False)  # everything is strict JSON


def test_metrics_become_series_points_and_non_finite_values_are_dropped():
    operations, dropped = metric_operations(
        {
            "train/loss": 0.5,
            "tokens": 1024,
            "done": False,
            "np": np.float32(0.25),
            "nan": math.nan,
            "inf": math.inf,
            "phase": "warmup",
            "//odd//name/": 1.0,
        },
        step=3,
        timestamp_ms=1700000000123,
    )
    point = {"step": 3.0, "timestampMilliseconds": 1700000000123}
    assert operations == [
        {"path": "train/loss", "logFloats": {"entries": [{"value": 0.5, **point}]}},
        {"path": "tokens", "logFloats": {"entries": [{"value": 1024.0, **point}]}},
        {"path": "done", "logFloats": {"entries": [{"value": 0.0, **point}]}},
        {"path": "np", "logFloats": {"entries": [{"value": 0.25, **point}]}},
        {"path": "phase", "logStrings": {"entries": [{"value": "warmup", **point}]}},
        {"path": "odd/name", "logFloats": {"entries": [{"value": 1.0, **point}]}},
    ]
    assert dropped == ["nan", "inf"]


def test_long_strings_are_cut_to_the_sdk_limits():
    operations, _ = metric_operations({"s": "x" * 5000}, step=0, timestamp_ms=0)
    assert len(operations[0]["logStrings"]["entries"][0]["value"]) == MAX_SERIES_STRING_LENGTH
    operation, cut = text_operation("sample/0", "y" * (MAX_STRING_LENGTH + 5))
    assert cut
    assert operation["path"] == "sample/0"
    assert len(operation["assignString"]["value"]) == MAX_STRING_LENGTH
    assert text_operation("k", "short") == (
        {"path": "k", "assignString": {"value": "short"}},
        False,
    )


def test_empty_field_name_is_refused():
    with pytest.raises(MetricsSinkError, match="empty"):
        metric_operations({"//": 1.0}, step=0, timestamp_ms=0)


def test_start_and_failed_operations_match_the_sdk():
    assert start_operations(name="demo", tags=["a", "b"]) == [
        {"path": "sys/name", "assignString": {"value": "demo"}},
        {"path": "sys/failed", "assignBool": {"value": False}},
        {"path": "sys/tags", "insertStrings": {"values": ["a", "b"]}},
    ]
    assert start_operations(name=None, tags=[]) == [
        {"path": "sys/failed", "assignBool": {"value": False}}
    ]
    assert failed_operation() == {"path": "sys/failed", "assignBool": {"value": True}}


def test_merge_groups_by_path_and_merges_series_points():
    def point(path, step):
        return {"path": path, "logFloats": {"entries": [{"value": 1.0, "step": step}]}}

    original = [
        point("loss", 0),
        point("acc", 0),
        {"path": "note", "assignString": {"value": "a"}},
        point("loss", 1),
        {"path": "note", "assignString": {"value": "b"}},
        point("acc", 1),
        {"path": "sys/tags", "insertStrings": {"values": ["x"]}},
        {"path": "sys/tags", "insertStrings": {"values": ["y"]}},
    ]
    snapshot = json.loads(json.dumps(original))
    merged = merge_operations(original)
    assert merged == [
        {
            "path": "loss",
            "logFloats": {"entries": [{"value": 1.0, "step": 0}, {"value": 1.0, "step": 1}]},
        },
        {
            "path": "acc",
            "logFloats": {"entries": [{"value": 1.0, "step": 0}, {"value": 1.0, "step": 1}]},
        },
        {"path": "note", "assignString": {"value": "b"}},
        {"path": "sys/tags", "insertStrings": {"values": ["x", "y"]}},
    ]
    assert original == snapshot  # inputs untouched (they are spooled rows)


def test_merge_keeps_order_of_different_kinds_on_one_path():
    operations = [
        {"path": "p", "logFloats": {"entries": [{"value": 1.0, "step": 0}]}},
        {"path": "p", "clearFloatSeries": {}},
        {"path": "p", "logFloats": {"entries": [{"value": 2.0, "step": 0}]}},
    ]
    assert merge_operations(operations) == operations
