"""Integration: the metrics block (sinks, run_dir, per-sink settings) and the http port,
wired by the container from containers.yaml into real adapters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.config import required_when_selected_field
from crucible_train.container import AppContainer, build_container, load_config
from crucible_train.core.config_dump import dump_config
from crucible_train.errors import ConfigurationError, MissingSecretError

from extra_backends import branch, extra_backends
from fakes import FakeMetricsSink

SECRET = "sk-Integration-Secret-4242"


def _problems(*overrides: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        load_config(overrides=overrides, environ=env or {}, base_dir=Path("/"))
    return list(info.value.problems)


# --- the default: files + console in runs/default -----------------------------------------


def test_default_sinks_write_metrics_jsonl_in_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    container = build_container(environ={}, base_dir=tmp_path)
    try:
        metrics = container.metrics_resource()
        metrics.log_hparams(dump_config({"lr": 0.1, "api_key": SECRET}, secrets=[SECRET]))
        metrics.log_metrics({"loss": 0.5, "acc": float("nan")}, step=0)
        metrics.log_metrics({"loss": 0.25}, step=1)
    finally:
        container.shutdown_resources()
    run_dir = tmp_path / "runs" / "default"
    lines = (run_dir / "metrics.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 0, "loss": 0.5, "acc": "NaN"},
        {"step": 1, "loss": 0.25},
    ]
    config_text = (run_dir / "config.json").read_text("utf-8")
    assert SECRET not in config_text
    assert json.loads(config_text) == {"api_key": "***", "lr": 0.1}
    assert json.loads((run_dir / "run_status.json").read_text("utf-8")) == {"exit_code": 0}
    err = capsys.readouterr().err
    assert "Step 0" in err
    assert "Step 1" in err


def test_sink_types_and_settings(tmp_path: Path) -> None:
    container = build_container(
        overrides=["metrics.console={every: 5, width: 90}", "metrics.run_dir=out/run7"],
        environ={},
        base_dir=tmp_path,
    )
    try:
        files, console = container.metrics_sinks()
        assert isinstance(files, FilesMetricsSink)
        assert isinstance(console, ConsoleMetricsSink)
        assert files.run_dir == str(tmp_path / "out" / "run7")
        assert console._every == 5
        assert container.config.metrics.run_dir() == str(tmp_path / "out" / "run7")
    finally:
        container.shutdown_resources()


def test_run_dir_takes_environment_references(tmp_path: Path) -> None:
    resolved = load_config(
        overrides=["metrics.run_dir=${RUN_DIR:runs/fallback}"],
        environ={"RUN_DIR": "/abs/run"},
        base_dir=tmp_path,
    )
    assert resolved.as_dict()["metrics"]["run_dir"] == "/abs/run"
    fallback = load_config(
        overrides=["metrics.run_dir=${RUN_DIR:runs/fallback}"], environ={}, base_dir=tmp_path
    )
    assert fallback.as_dict()["metrics"]["run_dir"] == str(tmp_path / "runs" / "fallback")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("metrics.run_dir=3", "metrics.run_dir: expected a string, got 3 (int)"),
        ("metrics.run_dir=' '", "metrics.run_dir: must not be empty"),
        ("metrics.console.every=0", "metrics.console.every: must be greater than 0, got 0"),
        (
            "metrics.console.colour=1",
            "metrics.console.colour: unknown setting; valid: every, width",
        ),
        ("http.requests.pool_size=0", "http.requests.pool_size: must be greater than 0, got 0"),
        (
            "http.requests.default_timeout=fast",
            "http.requests.default_timeout: expected a number, got 'fast' (str)",
        ),
        (
            "metrics.files.root=x",
            "metrics.files.root: unknown setting; valid: none (this backend takes no settings)",
        ),
    ],
)
def test_bad_metrics_and_http_settings(override: str, expected: str) -> None:
    assert _problems(override) == [expected]


def test_default_http_is_requests_and_is_closed_at_shutdown(tmp_path: Path) -> None:
    container = build_container(
        overrides=["http.requests={pool_size: 3, default_timeout: 4}"],
        environ={},
        base_dir=tmp_path,
    )
    http = container.http_resource()
    assert isinstance(http, RequestsHttpClient)
    assert http._default_timeout == 4.0
    container.shutdown_resources()
    assert http._closed


# --- sinks that take http / run_dir (test doubles with the W&B/Neptune constructor shape) ---


@attrs.frozen(kw_only=True)
class TrackerSettings:
    """A tracking-service sink: a secret and a project needed only when selected."""

    api_key: str = attrs.field(metadata={"crucible_train.secret_env": "CT_TRACKER_KEY"})
    project: str | None = required_when_selected_field()


@attrs.define
class Trackers:
    """The tracker sinks built (fakes with the W&B/Neptune constructor shape), and for each
    close whether the sink's HTTP client was still open."""

    built: list[FakeMetricsSink] = attrs.Factory(list)
    http_open_at_close: list[bool] = attrs.Factory(list)


@pytest.fixture
def tracker() -> Iterator[Trackers]:
    record = Trackers()

    def note_http(sink: FakeMetricsSink) -> None:
        record.http_open_at_close.append(not getattr(sink.http, "_closed", False))

    sink = branch(
        "metrics",
        "tracker",
        FakeMetricsSink.builder(record.built, on_close=note_http),
        TrackerSettings,
        http=AppContainer.http,
        run_dir=AppContainer.config.metrics.run_dir,
    )
    with extra_backends("metrics", tracker=sink):
        yield record


def test_http_and_run_dir_are_injected(tracker: Trackers, tmp_path: Path) -> None:
    container = build_container(
        overrides=["metrics.sinks=[files, tracker]", "metrics.tracker={project: p}"],
        environ={"CT_TRACKER_KEY": SECRET},
        base_dir=tmp_path,
    )
    container.init_resources()
    (sink,) = tracker.built
    assert sink.http is container.http()
    assert sink.run_dir == str(tmp_path / "runs" / "default")
    assert sink.settings == {"api_key": SECRET, "project": "p"}
    container.shutdown_resources()
    assert tracker.http_open_at_close == [True]  # sinks close before the HTTP client
    assert sink.http._closed


def test_a_sink_that_needs_http_refuses_noop_http(tracker: Trackers) -> None:
    assert _problems(
        "metrics.sinks=[files, tracker]",
        "metrics.tracker={project: p}",
        "http.backend=noop",
        env={"CT_TRACKER_KEY": SECRET},
    ) == [
        "metrics.sinks[1]: sink 'tracker' sends its data over HTTP, but http.backend is "
        "'noop'; set http.backend: requests"
    ]


def test_required_when_selected_fields(tracker: Trackers) -> None:
    # Unselected: project may stay null and the secret may be unset.
    load_config(overrides=["metrics.tracker={project: null}"], environ={}, base_dir=Path("/"))
    assert _problems("metrics.sinks=[tracker]", env={"CT_TRACKER_KEY": SECRET}) == [
        "metrics.tracker.project: must be set when this backend is selected; expected a string"
    ]


def test_missing_secret_of_a_selected_sink_names_the_variable(
    tracker: Trackers,
) -> None:
    with pytest.raises(MissingSecretError) as info:
        load_config(
            overrides=["metrics.sinks=[tracker]", "metrics.tracker={project: p}"],
            environ={},
            base_dir=Path("/"),
        )
    assert info.value.problems == (
        "metrics.tracker.api_key: environment variable CT_TRACKER_KEY is not set",
    )


# --- the real W&B and Neptune sinks ---------------------------------------------------------


def test_selected_wandb_needs_its_key_and_project() -> None:
    assert _problems("metrics.sinks=[files, wandb]") == [
        "metrics.wandb.api_key: environment variable WANDB_API_KEY is not set",
        "metrics.wandb.project: must be set when this backend is selected; expected a string",
    ]
    with pytest.raises(MissingSecretError) as info:
        load_config(
            overrides=["metrics.sinks=[wandb]", "metrics.wandb.project=p"],
            environ={},
            base_dir=Path("/"),
        )
    assert info.value.problems == (
        "metrics.wandb.api_key: environment variable WANDB_API_KEY is not set",
    )


def test_selected_neptune_needs_workspace_project_and_real_http() -> None:
    assert _problems(
        "metrics.sinks=[neptune]",
        "metrics.neptune.project=proj",
        "http.backend=noop",
        env={"NEPTUNE_API_TOKEN": SECRET},
    ) == [
        "metrics.neptune.project: expected 'workspace/project', got 'proj'",
        "metrics.sinks[0]: sink 'neptune' sends its data over HTTP, but http.backend is "
        "'noop'; set http.backend: requests",
    ]


def test_unselected_remote_sinks_need_nothing(tmp_path: Path) -> None:
    resolved = load_config(environ={}, base_dir=tmp_path)
    assert resolved.backends()["metrics"] == ["files", "console"]
    assert "wandb" not in resolved.as_dict()["metrics"]


def test_wandb_is_built_with_the_containers_http_and_run_dir(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    container = build_container(
        overrides=[
            "metrics.sinks=[files, wandb]",
            f"metrics.wandb={{project: p, base_url: '{dead}', close_timeout_s: 0.2}}",
        ],
        environ={"WANDB_API_KEY": SECRET},
        base_dir=tmp_path,
    )
    try:
        metrics = container.metrics_resource()
        metrics.log_metrics({"loss": 1.0}, step=0)  # returns at once; delivery is background
        _files, wandb = container.metrics_sinks()
        assert type(wandb).__name__ == "WandbMetricsSink"
        assert wandb._sender is not None
    finally:
        container.shutdown_resources()
    assert (tmp_path / "runs" / "default" / "metrics.jsonl").is_file()
    assert (tmp_path / "runs" / "default" / "spool" / "wandb").is_dir()
    assert SECRET not in "".join(
        p.read_text("utf-8", errors="replace") for p in tmp_path.rglob("*") if p.is_file()
    )


def test_container_masks_configured_secrets_in_the_logged_run_config(tmp_path):
    import json

    from crucible_train.container import build_container

    secret = "hf_VERYSECRETTOKEN123"
    container = build_container(
        overrides=[f"metrics.run_dir={tmp_path}", "metrics.sinks=[files]"],
        environ={"HF_TOKEN": secret},
    )
    sink = container.metrics()
    sink.log_hparams({"download_url": f"https://hub.example/?t={secret}", "lr": 0.1})
    sink.close()
    text = (tmp_path / "config.json").read_text()
    assert secret not in text
    assert json.loads(text)["lr"] == 0.1
