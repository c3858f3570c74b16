"""Tests for the crucible-train command: exit codes, one line per problem, no tracebacks."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import crucible_train
from crucible_train.entrypoints.cli import config as config_command
from crucible_train.entrypoints.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[4]
SECRET = "hf_Distinctive_S3cret_value_9182"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every command from an empty directory with no hub token set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"crucible-train {crucible_train.__version__}\n"
    assert crucible_train.__version__ == "0.2.0"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: crucible-train" in out
    assert "config" in out
    assert main(["config", "show", "--help"]) == 0
    assert "key=value" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: crucible-train" in capsys.readouterr().err
    assert main(["config"]) == 2
    assert "usage: crucible-train config" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_config_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == 2  # the OK line, then the configured model's facts
    assert lines[0].startswith("OK: ")
    assert lines[1].startswith("model (model_info.local_torch): ")
    assert "training=local_torch" in lines[0]
    assert "tokenizer=byte_level" in lines[0]
    assert "metrics=[files, console]" in lines[0]
    assert "http=requests" in lines[0]
    assert "blob_store=files" in lines[0]


def test_config_check_reports_the_configured_models_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert main(["config", "check", "model_info.local_torch.hidden_size=64"]) == 0
    model = capsys.readouterr().out.splitlines()[1]
    # Qwen3 at the default shape but width 64: 4 heads and 2 KV heads of 32, MLP 384,
    # 512-token vocabulary with tied embeddings (counted once), RMS norms with weights.
    hidden, heads, kv_heads, head_dim, mlp, vocab = 64, 4, 2, 32, 384, 512
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 2 * head_dim
    layer = attention + 3 * hidden * mlp + 2 * hidden
    parameters = vocab * hidden + 4 * layer + hidden
    assert model == (
        "model (model_info.local_torch): qwen3, 4 layers, hidden 64, 4 heads, vocab 512, "
        f"context 2048; {parameters:,} parameters"
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["model_info.backend=noop"],
            "model (model_info.noop): unknown (the backend knows no model)",
        ),
        (
            ["model_info.backend=tinker", "model_info.tinker.base_model=Qwen/Qwen3-8B"],
            "model (model_info.tinker): not asked "
            "(it asks the service; config check stays offline)",
        ),
    ],
)
def test_config_check_asks_no_service_for_the_model(
    overrides: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TINKER_API_KEY", "tml-not-a-real-key")
    assert main(["config", "check", *overrides]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1] == expected
    assert "tml-not-a-real-key" not in captured.out


def test_config_check_names_a_model_it_cannot_read_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "empty").mkdir()
    assert main(["config", "check", f"model_info.local_torch.model_path={tmp_path / 'empty'}"]) == 0
    model = capsys.readouterr().out.splitlines()[1]
    assert model.startswith("model (model_info.local_torch): unknown (ConfigurationError: ")
    assert "has no config.json" in model


def test_config_show_prints_yaml_with_absolute_paths_and_masked_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert main(["config", "show", "vector_store.memory.dimension=4"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    shown = yaml.safe_load(out)
    assert shown["hub"]["huggingface"]["token"] == "***"
    assert shown["blob_store"]["files"]["root"] == str(tmp_path / "runs" / "blobs")
    assert shown["vector_store"]["memory"]["dimension"] == 4


def test_config_file_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my.yaml").write_text("blob_store:\n  backend: noop\n", encoding="utf-8")
    assert main(["config", "show", "--config", "my.yaml"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["blob_store"] == {"backend": "noop", "noop": {}}


def test_config_check_lists_every_problem_one_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "config",
            "check",
            "training.backend=torchh",
            "metrics.sinks=[noop, noop]",
            "blob_store.files.root=3",
            f"hub.huggingface.token={SECRET}",
            "oops",
        ]
    )
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("error: ") for line in lines)
    assert (
        "error: training.backend: unknown backend 'torchh'; valid: local_torch, noop, tinker"
        in lines
    )
    assert "Traceback" not in captured.err
    assert SECRET not in captured.err


def test_missing_config_file_names_the_absolute_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--config", "missing.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: config file {tmp_path / 'missing.yaml'} does not exist\n"


def test_yaml_error_is_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text("training: [\n", encoding="utf-8")
    assert main(["config", "check", "--config", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'bad.yaml'}:")
    assert len(err.splitlines()) == 1


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "config", "check", "training.backend=torchh"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "error: training.backend: unknown backend 'torchh'" in err
    # --debug is accepted after the subcommand too.
    assert main(["config", "check", "--debug", "training.backend=torchh"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_unexpected_errors_exit_1_with_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(config_command, "load_config", explode)
    assert main(["config", "check"]) == 1
    err = capsys.readouterr().err
    assert err == "error: unexpected RuntimeError: boom (re-run with --debug for the traceback)\n"
    assert main(["--debug", "config", "check"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "RuntimeError: boom" in err


def test_python_dash_m_entry_point() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [sys.executable, "-m", "crucible_train", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "crucible-train 0.2.0\n"


def test_the_console_script_runs_the_same_main() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, name = scripts["project"]["scripts"]["crucible-train"].partition(":")
    assert getattr(importlib.import_module(module), name) is main
