"""crucible_train.entrypoints.logger_facade.create_logger: kinds, options, secrets from the
environment, multiplexing, and the lifecycle of the HTTP client it creates."""

from __future__ import annotations

import importlib
import io
import json
import socket
import sys
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.container import BACKENDS
from crucible_train.core.metrics_fanout import MultiplexMetricsSink
from crucible_train.entrypoints import logger_facade as ct_logging
from crucible_train.entrypoints.logger_facade import create_logger, dump_config
from crucible_train.errors import ConfigurationError, MissingSecretError

from extra_backends import branch, extra_backends
from fakes import FakeHttpClient, FakeMetricsSink

SECRET = "wandb-Facade-Secret-5150"


def test_the_seed_import_path_is_a_deprecated_alias_of_the_facade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Imported afresh so the warning is raised here whatever imported it before.
    monkeypatch.delitem(sys.modules, "crucible_train.logging", raising=False)
    with pytest.warns(DeprecationWarning, match=r"crucible_train\.entrypoints\.logger_facade"):
        old = importlib.import_module("crucible_train.logging")
    assert old.__all__ == ct_logging.__all__
    for name in ct_logging.__all__:
        assert getattr(old, name) is getattr(ct_logging, name), name


@pytest.fixture
def trackers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeMetricsSink]]:
    """Replace the real W&B and Neptune sinks by fakes with their settings schemas; yields
    the fakes built, each holding the injected arguments and settings it got."""
    built: list[FakeMetricsSink] = []
    replacements = {
        name: branch(
            "metrics", name, FakeMetricsSink.builder(built), BACKENDS["metrics"][name].settings
        )
        for name in ("wandb", "neptune")
    }
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    with extra_backends("metrics", **replacements):
        yield built


# --- kinds --------------------------------------------------------------------------------


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ConfigurationError) as info:
        create_logger("tensorboard")
    assert str(info.value) == (
        "unknown logger kind 'tensorboard'; valid: json, multiplex, neptune, pretty, wandb"
    )


def test_json_is_the_files_sink_with_an_absolute_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = create_logger("json", log_dir="runs/a")
    assert isinstance(sink, FilesMetricsSink)
    assert sink.run_dir == str(tmp_path / "runs" / "a")
    sink.log_metrics({"loss": 1.0}, step=0)
    sink.close()
    assert (tmp_path / "runs" / "a" / "metrics.jsonl").read_text("utf-8") == (
        '{"step":0,"loss":1.0}\n'
    )


def test_json_accepts_path_objects(tmp_path):
    sink = create_logger("json", log_dir=tmp_path / "p")
    assert sink.run_dir == str(tmp_path / "p")
    sink.close()


def test_json_needs_log_dir():
    with pytest.raises(ConfigurationError, match="create_logger\\('json'\\) needs log_dir"):
        create_logger("json")


def test_unknown_options_list_the_valid_ones(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        create_logger("json", log_dir=str(tmp_path), every=2)
    assert str(info.value) == "create_logger('json'): unknown option 'every'; valid: log_dir"


def test_pretty_is_the_console_sink():
    out = io.StringIO()
    sink = create_logger("pretty", every=2, console=Console(file=out, width=100))
    assert isinstance(sink, ConsoleMetricsSink)
    sink.log_metrics({"loss": 0.5}, step=0)
    sink.log_metrics({"loss": 0.4}, step=1)
    assert "Step 0" in out.getvalue()
    assert "Step 1" not in out.getvalue()


def test_invalid_values_are_reported_with_the_schema_messages():
    with pytest.raises(ConfigurationError) as info:
        create_logger("pretty", every="often")
    assert str(info.value) == "pretty.every: expected a whole number, got 'often' (str)"


def test_dump_config_is_re_exported():
    assert dump_config({"token": "x"}) == {"token": "***"}


# --- wandb / neptune (with stand-ins) ------------------------------------------------------


def test_wandb_reads_the_key_from_the_environment(trackers, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    http = FakeHttpClient()
    sink = create_logger("wandb", project="p", log_dir=str(tmp_path), run_name="r", http=http)
    (tracker,) = trackers
    assert sink is tracker  # the caller owns the client: no wrapper
    assert tracker.http is http
    assert tracker.run_dir == str(tmp_path)
    assert tracker.settings["api_key"] == SECRET
    assert tracker.settings["project"] == "p"
    assert tracker.settings["run_name"] == "r"
    assert tracker.settings["base_url"] == "https://api.wandb.ai"
    sink.close()
    assert http.closes == 0


def test_wandb_explicit_key_wins_over_the_environment(trackers, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "from-env")
    create_logger(
        "wandb", api_key=SECRET, project="p", log_dir=str(tmp_path), http=FakeHttpClient()
    )
    assert trackers[0].settings["api_key"] == SECRET


def test_wandb_without_a_key_names_the_variable(trackers, tmp_path):
    with pytest.raises(MissingSecretError) as info:
        create_logger("wandb", project="p", log_dir=str(tmp_path), http=FakeHttpClient())
    assert "WANDB_API_KEY" in str(info.value)


def test_wandb_without_a_project_names_it(trackers, tmp_path):
    with pytest.raises(ConfigurationError) as info:
        create_logger("wandb", api_key=SECRET, log_dir=str(tmp_path), http=FakeHttpClient())
    assert str(info.value) == (
        "wandb.project: must be set when this backend is selected; expected a string"
    )
    assert SECRET not in str(info.value)


def test_neptune_project_must_be_workspace_slash_project(trackers, tmp_path, monkeypatch):
    monkeypatch.setenv("NEPTUNE_API_TOKEN", SECRET)
    with pytest.raises(ConfigurationError, match="expected 'workspace/project'"):
        create_logger("neptune", project="proj", log_dir=str(tmp_path), http=FakeHttpClient())
    create_logger("neptune", project="ws/proj", log_dir=str(tmp_path), http=FakeHttpClient())
    assert trackers[0].settings["api_token"] == SECRET


def test_a_created_http_client_is_closed_with_the_sink(trackers, tmp_path):
    sink = create_logger("wandb", api_key=SECRET, project="p", log_dir=str(tmp_path))
    (tracker,) = trackers
    assert isinstance(tracker.http, RequestsHttpClient)
    assert sink.sink is tracker
    sink.log_metrics({"a": 1}, step=0)
    assert sink.get_url() is None
    sink.close(2)
    assert tracker.exit_codes == [2]
    assert tracker.http._closed


def test_http_must_be_an_http_client(trackers, tmp_path):
    with pytest.raises(ConfigurationError, match="http must be an HttpClient"):
        create_logger("wandb", api_key=SECRET, project="p", log_dir=str(tmp_path), http="x")


# --- multiplex ----------------------------------------------------------------------------


def test_multiplex_of_kinds_shares_options(tmp_path):
    out = io.StringIO()
    sink = create_logger(
        "multiplex",
        kinds=["json", "pretty"],
        log_dir=str(tmp_path),
        console=Console(file=out, width=100),
    )
    assert isinstance(sink, MultiplexMetricsSink)
    assert [type(s) for s in sink.sinks] == [FilesMetricsSink, ConsoleMetricsSink]
    sink.log_metrics({"loss": 0.5}, step=7)
    sink.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text("utf-8")) == {"step": 7, "loss": 0.5}
    assert "Step 7" in out.getvalue()


def test_multiplex_with_given_loggers_first(tmp_path):
    given = FakeMetricsSink()
    sink = create_logger("multiplex", loggers=[given], kinds=["json"], log_dir=str(tmp_path))
    assert sink.sinks[0] is given
    sink.log_metrics({"x": 1}, step=0)
    sink.close()
    assert given.rows == [(0, {"x": 1})]
    assert given.closed == 1


def test_multiplex_per_kind_options_and_one_shared_http_client(trackers, tmp_path):
    sink = create_logger(
        "multiplex",
        kinds=["json", "wandb", "neptune"],
        log_dir=str(tmp_path),
        run_name="shared-name",
        wandb={"api_key": SECRET, "project": "wb-proj"},
        neptune={"api_token": SECRET, "project": "ws/np-proj"},
    )
    wandb, neptune = trackers
    assert wandb.settings["project"] == "wb-proj"
    assert neptune.settings["project"] == "ws/np-proj"
    assert wandb.settings["run_name"] == neptune.settings["run_name"] == "shared-name"
    assert wandb.http is neptune.http
    assert isinstance(wandb.http, RequestsHttpClient)
    sink.close(1)
    assert wandb.exit_codes == neptune.exit_codes == [1]
    assert wandb.http._closed


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({}, "needs loggers=[...] and/or kinds=[...]"),
        ({"kinds": ["json", "json"]}, "list each kind once"),
        ({"kinds": ["multiplex"]}, "kinds[0] is 'multiplex'"),
        ({"kinds": ["tensorboard"]}, "kinds[0] is 'tensorboard'; valid: json, neptune, pretty"),
        ({"loggers": [object()]}, "loggers[0] is a object, not a MetricsSink"),
        ({"kinds": ["pretty"], "log_dir": "x"}, "option 'log_dir' is not used by any of"),
        ({"kinds": ["pretty"], "json": {}}, "option 'json' is not used by any of"),
    ],
)
def test_multiplex_misuse(opts, message):
    with pytest.raises(ConfigurationError, match=message.replace("[", "\\[").replace("(", "\\(")):
        create_logger("multiplex", **opts)


def test_multiplex_build_failure_closes_what_was_started(trackers, tmp_path):
    given_http = FakeHttpClient()
    with pytest.raises(ConfigurationError, match=r"neptune\.project"):
        create_logger(
            "multiplex",
            kinds=["wandb", "neptune"],
            log_dir=str(tmp_path),
            http=given_http,
            wandb={"api_key": SECRET, "project": "p"},
            neptune={"api_token": SECRET},
        )
    (wandb,) = trackers
    assert wandb.exit_codes == [1]  # marked failed, not left "running"
    assert given_http.closes == 0  # the caller's client is the caller's


def test_kinds_are_mapped_to_registered_backends():
    assert set(ct_logging.KINDS) == {"json", "pretty", "wandb", "neptune", "multiplex"}
    for backend in ct_logging.KINDS.values():
        assert backend is None or backend in BACKENDS["metrics"]


# --- the real W&B and Neptune sinks, pointed at a dead address ---------------------------


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_real_remote_sinks_never_block_on_a_dead_server(tmp_path):
    import base64

    dead = _dead_url()
    token = base64.b64encode(json.dumps({"api_address": dead, "api_url": dead}).encode()).decode()
    sink = create_logger(
        "multiplex",
        kinds=["json", "wandb", "neptune"],
        log_dir=str(tmp_path),
        wandb={"api_key": SECRET, "project": "p", "base_url": dead, "close_timeout_s": 0.2},
        neptune={"api_token": token, "project": "ws/p", "close_timeout_s": 0.2},
    )
    started = time.monotonic()
    for step in range(20):
        sink.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert time.monotonic() - started < 1.0
    sink.close()
    assert (tmp_path / "metrics.jsonl").is_file()
