"""Tests for ``crucible-train render``: both input forms, json and text output, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_train.core.renderers import get_renderer
from crucible_train.entrypoints.cli.main import main

from vocab_paths import o200k_base_file, qwen3_dir

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def _jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _json_out(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["render", *argv, "--format", "json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_jsonl_generation_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(
        tmp_path / "m.jsonl", [{"messages": CONV[:2]}, {"messages": CONV, "tools": [TOOL]}]
    )
    rows = _json_out(capsys, "--renderer", "qwen3", "--messages", str(path))
    assert len(rows) == 2
    assert all("weights" not in row for row in rows)
    assert rows[0]["text"].endswith("<|im_start|>assistant\n")
    assert "# Tools" in rows[1]["text"]
    # The byte-level vocabulary registers the renderer's special tokens as single ids.
    assert rows[0]["tokens"][0] == 256
    assert rows[0]["tokens"].count(256) == 3


def test_single_list_supervised_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(CONV, indent=2), encoding="utf-8")
    (row,) = _json_out(
        capsys, "--renderer", "llama3", "--messages", str(path), "--mode", "supervised"
    )
    assert len(row["weights"]) == len(row["tokens"])
    assert row["text"].startswith("<|begin_of_text|>")
    trained = [t for t, w in zip(row["tokens"], row["weights"], strict=True) if w > 0]
    assert bytes(t for t in trained if t < 256).decode() == "Hello!"


def test_train_on_and_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [CONV])  # a line may be a bare list too
    (last,) = _json_out(
        capsys, "--model", "Qwen/Qwen3-8B", "--messages", str(path), "--mode", "supervised"
    )
    (all_msgs,) = _json_out(
        capsys,
        "--model",
        "Qwen/Qwen3-8B",
        "--messages",
        str(path),
        "--mode",
        "supervised",
        "--train-on",
        "all_messages",
    )
    assert last["tokens"] == all_msgs["tokens"]
    assert sum(all_msgs["weights"]) > sum(last["weights"]) > 0


def test_hf_tokenizer_matches_renderer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = qwen3_dir() / "tokenizer.json"
    path = _jsonl(tmp_path / "m.jsonl", [{"messages": CONV}])
    (row,) = _json_out(
        capsys, "--renderer", "qwen3", "--tokenizer", str(file), "--messages", str(path)
    )
    from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer

    renderer = get_renderer("qwen3", HuggingFaceTokenizer(path=str(file)))
    assert row["tokens"] == renderer.build_generation_prompt(CONV).to_ints()
    assert row["tokens"][0] == 151644


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"messages": CONV}])
    assert main(["render", "--renderer", "qwen3", "--messages", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# line 1:")
    assert "<|im_start|>user\nHi<|im_end|>" in out
    assert (
        main(["render", "--renderer", "qwen3", "--messages", str(path), "--mode", "supervised"])
        == 0
    )
    out = capsys.readouterr().out
    assert "trained" in out
    assert "Hello!<|im_end|>" in out


def test_text_output_styles() -> None:
    import io

    from rich.console import Console

    from crucible_train.entrypoints.cli.render import (
        TRAINED_STYLE,
        UNTRAINED_STYLE,
        Conversation,
        _text_output,
    )

    renderer = get_renderer("role_colon", _byte_level())
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard")
    model_input, weights = renderer.build_supervised_example(CONV[1:])
    tokens = model_input.to_ints()
    _text_output(console, renderer, Conversation(1, CONV[1:]), tokens, [float(w) for w in weights])
    rendered = buffer.getvalue()
    assert "\x1b[" in rendered  # coloured
    assert TRAINED_STYLE != UNTRAINED_STYLE
    assert "Hello!" in rendered


def _byte_level() -> Any:
    from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer

    return ByteLevelTokenizer()


def _errors(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(["render", *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err
    assert all(line.startswith("error: ") for line in err)
    return err


def test_unknown_renderer_lists_known(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"messages": CONV}])
    (line,) = _errors(capsys, "--renderer", "nope", "--messages", str(path))
    assert "unknown renderer 'nope'" in line
    assert "qwen3, qwen3_disable_thinking" in line
    (line,) = _errors(capsys, "--model", "gpt-2", "--messages", str(path))
    assert "no renderer known for model" in line


def test_unknown_train_on_lists_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"messages": CONV}])
    (line,) = _errors(capsys, "--renderer", "qwen3", "--messages", str(path), "--train-on", "bogus")
    assert "--train-on" in line
    assert "all_assistant_messages" in line


def test_malformed_lines_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(
        tmp_path / "m.jsonl",
        [{"messages": CONV}, "{not json", {"msgs": []}, "", {"messages": "x"}, '"str"'],
    )
    lines = _errors(capsys, "--renderer", "qwen3", "--messages", str(path))
    assert [line.split(":")[2] for line in lines] == ["2", "3", "5", "6"]
    assert all("malformed conversation line" in line for line in lines)


def test_unrenderable_conversation_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(
        tmp_path / "m.jsonl",
        [{"messages": CONV}, {"messages": [{"role": "wizard", "content": "x"}]}],
    )
    (line,) = _errors(capsys, "--renderer", "qwen3", "--messages", str(path))
    assert f"{path}:2:" in line


def test_missing_file_and_selector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = _errors(capsys, "--renderer", "qwen3", "--messages", str(tmp_path / "none.jsonl"))
    assert "cannot read" in line
    assert main(["render", "--messages", "x"]) == 2  # argparse: --model or --renderer needed
    assert "--model" in capsys.readouterr().err


def test_tiktoken_rank_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    ranks = str(o200k_base_file())
    path = _jsonl(tmp_path / "m.jsonl", [{"messages": CONV[1:2]}])
    (row,) = _json_out(
        capsys, "--renderer", "role_colon", "--tokenizer", ranks, "--messages", str(path)
    )
    tokenizer = TiktokenFileTokenizer(path=ranks, preset="o200k_base")
    assert row["tokens"] == tokenizer.encode("User: Hi\n\nAssistant:")
