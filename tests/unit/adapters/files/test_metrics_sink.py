"""FilesMetricsSink: the run-directory layout, line format, NaN encoding, atomic writes
(simulated crashes), long texts that never overwrite, and the exit status."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from crucible_train.adapters.files.metrics_sink import FilesMetricsSink, safe_text_name
from crucible_train.core.config_dump import dump_config
from crucible_train.errors import ConfigurationError, MetricsSinkError
from crucible_train.ports.metrics import MetricsSink

SECRET = "wandb_Secret_Key_00991"


def _strict(text: str):
    """Parse like a strict JSON reader: bare NaN / Infinity are refused."""

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _lines(path: Path) -> list[dict]:
    return [_strict(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "exp1"


@pytest.fixture
def sink(run_dir: Path):
    s = FilesMetricsSink(run_dir=str(run_dir))
    yield s
    s.close()


def test_is_a_metrics_sink_and_creates_the_run_dir(sink, run_dir):
    assert isinstance(sink, MetricsSink)
    assert run_dir.is_dir()
    assert sink.run_dir == str(run_dir)
    assert sink.get_url() is None


@pytest.mark.parametrize("bad", ["", "relative/dir", None])
def test_run_dir_must_be_absolute(bad):
    with pytest.raises(ConfigurationError, match="run_dir"):
        FilesMetricsSink(run_dir=bad)


def test_unusable_run_dir_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="cannot create run_dir"):
        FilesMetricsSink(run_dir=str(blocker / "sub"))


# --- metrics.jsonl ------------------------------------------------------------------------


def test_one_line_per_call_with_step_first(sink, run_dir):
    sink.log_metrics({"loss": 0.5, "acc": 0.25}, step=0)
    sink.log_metrics({"z": 1, "a": 2}, step=1)
    sink.log_metrics({"loss": 0.1})
    sink.log_metrics({}, step=3)
    text = (run_dir / "metrics.jsonl").read_text("utf-8")
    assert text == (
        '{"step":0,"loss":0.5,"acc":0.25}\n{"step":1,"z":1,"a":2}\n{"loss":0.1}\n{"step":3}\n'
    )
    assert [list(row) for row in _lines(run_dir / "metrics.jsonl")] == [
        ["step", "loss", "acc"],
        ["step", "z", "a"],
        ["loss"],
        ["step"],
    ]


def test_values_are_typed_and_non_finite_floats_are_strings(sink, run_dir):
    sink.log_metrics(
        {
            "nan": math.nan,
            "inf": math.inf,
            "-inf": -math.inf,
            "np_nan": np.float32("nan"),
            "np_float": np.float32(0.5),
            "np_int": np.int64(3),
            "np_bool": np.bool_(True),
            "done": False,
            "phase": "warmup",
            "big": 2**62,
            "unicode": "été",
        },
        step=np.int64(4),
    )
    (row,) = _lines(run_dir / "metrics.jsonl")
    assert row == {
        "step": 4,
        "nan": "NaN",
        "inf": "Infinity",
        "-inf": "-Infinity",
        "np_nan": "NaN",
        "np_float": 0.5,
        "np_int": 3,
        "np_bool": True,
        "done": False,
        "phase": "warmup",
        "big": 2**62,
        "unicode": "été",
    }
    assert type(row["np_int"]) is int
    assert type(row["done"]) is bool


@pytest.mark.parametrize("value", [None, [1, 2], {"a": 1}, b"x", complex(1, 1), object()])
def test_non_scalar_values_are_refused_naming_the_key(sink, run_dir, value):
    with pytest.raises(MetricsSinkError, match="metric 'bad' is a"):
        sink.log_metrics({"ok": 1.0, "bad": value}, step=0)
    assert not (run_dir / "metrics.jsonl").exists()  # nothing half-written


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_invalid_steps_are_refused(sink, step):
    with pytest.raises(MetricsSinkError, match="step"):
        sink.log_metrics({"loss": 1.0}, step=step)


def test_step_named_metric_collides_only_with_a_given_step(sink, run_dir):
    with pytest.raises(MetricsSinkError, match="collides with the step column"):
        sink.log_metrics({"step": 9}, step=5)
    sink.log_metrics({"step": 9})
    assert _lines(run_dir / "metrics.jsonl") == [{"step": 9}]


def test_each_line_is_one_write_and_flushed(sink, run_dir, monkeypatch):
    writes: list[bytes] = []
    sink.log_metrics({"warm": 1}, step=0)  # opens the file
    handle = sink._metrics
    original = handle.write

    def spy(data):
        writes.append(bytes(data))
        return original(data)

    monkeypatch.setattr(handle, "write", spy, raising=False)
    sink.log_metrics({"loss": 0.5, "text": "x" * 10_000}, step=1)
    assert len(writes) == 1
    assert writes[0].endswith(b"\n")
    # Flushed: another reader sees the line immediately, before sync or close.
    assert _lines(run_dir / "metrics.jsonl")[-1]["step"] == 1


def test_appends_to_an_existing_run_and_closes_off_a_torn_line(run_dir):
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_bytes(b'{"step":0,"loss":1}\n{"step":1,"lo')  # crash
    sink = FilesMetricsSink(run_dir=str(run_dir))
    sink.log_metrics({"loss": 0.5}, step=2)
    sink.close()
    lines = (run_dir / "metrics.jsonl").read_text("utf-8").splitlines()
    assert lines == ['{"step":0,"loss":1}', '{"step":1,"lo', '{"step":2,"loss":0.5}']


def test_write_failure_is_a_metrics_sink_error(sink, run_dir, monkeypatch):
    sink.log_metrics({"a": 1}, step=0)

    def full(_data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sink._metrics, "write", full, raising=False)
    with pytest.raises(MetricsSinkError, match="No space left on device"):
        sink.log_metrics({"a": 2}, step=1)


# --- config.json --------------------------------------------------------------------------


def test_config_json_is_pretty_sorted_and_strict(sink, run_dir):
    sink.log_hparams({"b": 1, "a": {"y": math.nan, "x": [1, 2.5]}, "path": None, "on": True})
    text = (run_dir / "config.json").read_text("utf-8")
    assert (
        text
        == json.dumps(
            {"a": {"x": [1, 2.5], "y": "NaN"}, "b": 1, "on": True, "path": None},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    _strict(text)


def test_config_json_is_replaced_by_the_next_call(sink, run_dir):
    sink.log_hparams({"lr": 1})
    sink.log_hparams({"lr": 2})
    assert _strict((run_dir / "config.json").read_text("utf-8")) == {"lr": 2}
    assert [p.name for p in run_dir.iterdir()] == ["config.json"]  # no temp files left


def test_non_json_config_values_are_kept_as_reprs(sink, run_dir):
    sink.log_hparams({"obj": object.__new__(type("Thing", (), {"__repr__": lambda s: "Thing"}))})
    assert _strict((run_dir / "config.json").read_text("utf-8")) == {"obj": "Thing"}


@pytest.mark.parametrize(("config", "match"), [([1, 2], "mapping"), ({1: "a"}, "strings")])
def test_bad_configs_are_refused(sink, config, match):
    with pytest.raises(MetricsSinkError, match=match):
        sink.log_hparams(config)


def test_crash_during_config_replace_keeps_the_old_file_and_leaves_no_temp(
    sink, run_dir, monkeypatch
):
    sink.log_hparams({"lr": 1})
    before = (run_dir / "config.json").read_bytes()

    def crash(_src, _dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(MetricsSinkError, match=r"config\.json"):
        sink.log_hparams({"lr": 2})
    assert (run_dir / "config.json").read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json"]


def test_a_secret_given_to_dump_config_never_reaches_config_json(sink, run_dir):
    config = {
        "wandb": {"api_key": SECRET, "project": "p"},
        "endpoint": f"https://user:{SECRET}@example.test/",
        "notes": [f"token was {SECRET}"],
    }
    sink.log_hparams(dump_config(config, secrets=[SECRET]))
    text = (run_dir / "config.json").read_text("utf-8")
    assert SECRET not in text
    assert _strict(text)["wandb"] == {"api_key": "***", "project": "p"}


# --- long texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("sample", "sample"),
        ("samples/step 3:a", "samples_step_3_a"),
        ("../../etc/passwd", "_._.._etc_passwd"),
        (".hidden", "_hidden"),
        ("", "_"),
        ("é\\x", "__x"),
        ("k" * 300, "k" * 100),
    ],
)
def test_safe_text_names(key, name):
    assert safe_text_name(key) == name


def test_long_texts_are_files_with_an_index_and_never_overwritten(sink, run_dir):
    sink.log_long_text("sample/0", "first")
    sink.log_long_text("sample/0", "second")
    sink.log_long_text("sample_0", "third: sanitises like the first key")
    sink.log_long_text("../escape", "stays inside")
    texts = run_dir / "texts"
    assert (texts / "sample_0.txt").read_text("utf-8") == "first"
    assert (texts / "sample_0.1.txt").read_text("utf-8") == "second"
    assert (texts / "sample_0.2.txt").read_text("utf-8") == "third: sanitises like the first key"
    assert (texts / "_._escape.txt").read_text("utf-8") == "stays inside"
    assert _lines(texts / "index.jsonl") == [
        {"key": "sample/0", "file": "texts/sample_0.txt"},
        {"key": "sample/0", "file": "texts/sample_0.1.txt"},
        {"key": "sample_0", "file": "texts/sample_0.2.txt"},
        {"key": "../escape", "file": "texts/_._escape.txt"},
    ]
    assert not (run_dir.parent / "escape.txt").exists()


def test_long_texts_survive_a_reopened_run_dir(run_dir):
    first = FilesMetricsSink(run_dir=str(run_dir))
    first.log_long_text("k", "one")
    first.close()
    second = FilesMetricsSink(run_dir=str(run_dir))
    second.log_long_text("k", "two")
    second.close()
    assert (run_dir / "texts" / "k.txt").read_text("utf-8") == "one"
    assert (run_dir / "texts" / "k.1.txt").read_text("utf-8") == "two"
    assert len(_lines(run_dir / "texts" / "index.jsonl")) == 2


def test_long_text_arguments_must_be_strings(sink):
    with pytest.raises(MetricsSinkError, match="string key and text"):
        sink.log_long_text("k", 3)


# --- close / sync -------------------------------------------------------------------------


def test_close_records_the_exit_code_once(run_dir):
    sink = FilesMetricsSink(run_dir=str(run_dir))
    sink.log_metrics({"a": 1}, step=0)
    sink.close(3)
    sink.close(0)  # idempotent: the first exit code stays
    assert _strict((run_dir / "run_status.json").read_text("utf-8")) == {"exit_code": 3}
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.jsonl", "run_status.json"]
    sink.sync()  # allowed after close
    with pytest.raises(MetricsSinkError, match="close"):
        sink.log_metrics({"a": 2}, step=1)


def test_sync_fsyncs_open_files(sink, run_dir, monkeypatch):
    sink.log_metrics({"a": 1}, step=0)
    sink.log_long_text("k", "v")
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    sink.sync()
    assert len(synced) == 2


def test_status_write_failure_is_reported_but_files_are_closed(run_dir, monkeypatch):
    sink = FilesMetricsSink(run_dir=str(run_dir))
    sink.log_metrics({"a": 1}, step=0)
    handle = sink._metrics
    monkeypatch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(OSError(13, "denied")))
    with pytest.raises(MetricsSinkError, match="denied"):
        sink.close()
    assert handle.closed
    assert not (run_dir / "run_status.json").exists()
