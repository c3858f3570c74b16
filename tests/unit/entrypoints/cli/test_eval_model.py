"""``crucible-train eval --model`` / ``--model-path``: a trained run's checkpoint answers the
samples (greedy by default, seeded sampling reproducible), and the refusals of bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from crucible_train.container import load_config
from crucible_train.core.config_dump import dump_config
from crucible_train.entrypoints.cli.main import main
from crucible_train.entrypoints.cli.train import run_train
from crucible_train.entrypoints.planning import TrainOptions
from servers.fake_openai import FakeOpenAI
from tiny_runs import TINY_SFT

TINY = (*TINY_SFT, "train.sft.max_steps=3", "train.sft.save_every=2")
NOOP = ("metrics.sinks=[noop]",)
SAMPLES = [
    {"id": "a", "input": "What is 3 + 4?", "target": "7"},
    {
        "id": "b",
        "input": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "What is 10 + 5?"},
        ],
        "target": "15",
    },
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _samples(path: Path, rows: list[Any] = SAMPLES) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _outputs(path: Path) -> dict[str, str | None]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]  # line 0 is the header
    return {row["id"]: row["output"] for row in map(json.loads, lines)}


@pytest.fixture(scope="module")
def sft_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished SFT run on the embedded default (checkpoints at steps 2 and 3)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("runs")
    options = TrainOptions(recipe="sft", overrides=(*TINY, f"train.runs_root={root}"))
    assert run_train(options, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    (run,) = root.iterdir()
    return run


def _eval(run: str, out: str, *args: str) -> int:
    samples = _samples(Path("s.jsonl"))
    return main(["eval", "--model", run, "--samples", samples, "--out", out, *args, *NOOP])


@pytest.mark.torch
def test_a_run_is_sampled_greedily_and_deterministically(
    sft_run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _eval(str(sft_run_dir), "g1.jsonl", "--max-tokens", "6") == 0
    captured = capsys.readouterr()
    assert "checkpoint 'final' (step 3, local_torch)" in captured.err
    assert "evaluation summary" in captured.out
    assert _eval(str(sft_run_dir), "g2.jsonl", "--max-tokens", "6") == 0
    first, second = _outputs(Path("g1.jsonl")), _outputs(Path("g2.jsonl"))
    assert set(first) == {"a", "b"}  # a text input and a conversation both answered
    assert all(isinstance(text, str) for text in first.values())
    assert first == second
    # The earlier checkpoint is another model: --resume refuses its results file.
    assert _eval(f"{sft_run_dir}:2", "g1.jsonl", "--max-tokens", "6", "--resume") == 2
    assert "different run" in capsys.readouterr().err


@pytest.mark.torch
def test_seeded_sampling_at_temperature_is_reproducible(sft_run_dir: Path) -> None:
    sampled = ("--temperature", "1", "--max-tokens", "8", "--num-samples", "3")
    assert _eval(f"{sft_run_dir}:2", "t1.jsonl", *sampled, "--seed", "5") == 0
    assert _eval(f"{sft_run_dir}:2", "t2.jsonl", *sampled, "--seed", "5") == 0
    assert _eval(f"{sft_run_dir}:2", "t3.jsonl", *sampled, "--seed", "6") == 0
    first = _outputs(Path("t1.jsonl"))
    assert sorted(first) == ["a#0", "a#1", "a#2", "b#0", "b#1", "b#2"]
    assert first == _outputs(Path("t2.jsonl"))
    assert first != _outputs(Path("t3.jsonl"))
    assert len({first["a#0"], first["a#1"], first["a#2"]}) > 1  # K answers, not K copies


@pytest.mark.torch
def test_a_hugging_face_directory_is_sampled_with_model_path(sft_run_dir: Path) -> None:
    directory = sft_run_dir / "checkpoints" / "final-sampler"
    samples = _samples(Path("s.jsonl"))
    args = ["eval", "--model-path", str(directory), "--samples", samples, "--out", "p.jsonl"]
    assert main([*args, "--max-tokens", "6", *NOOP]) == 0
    assert _eval(str(sft_run_dir), "g.jsonl", "--max-tokens", "6") == 0
    assert _outputs(Path("p.jsonl")) == _outputs(Path("g.jsonl"))  # the same weights


# --- bad input (no torch needed: refused before a model is built) ---------------------------


def _run_dir(root: Path, records: list[dict[str, Any]]) -> Path:
    run = root / "runs" / "sft-1"
    run.mkdir(parents=True)
    resolved = load_config(None, [])
    config = dump_config(resolved.as_dict(), secrets=resolved.secret_values())
    (run / "config.json").write_text(json.dumps(config))
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (run / "checkpoints.jsonl").write_text(lines)
    return run


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    samples = _samples(Path("s.jsonl"))
    assert main(["eval", "--samples", samples, *args, *NOOP]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_model_arguments_exit_2_and_say_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unfinished = _run_dir(
        tmp_path,
        [
            {"name": "000002", "step": 2, "state_path": "s/2", "sampler_path": "w/2"},
            {"name": "interrupted-000003", "step": 3, "state_path": "s/3"},
        ],
    )
    err = _error(capsys, "--model", str(unfinished))
    assert "has no finished checkpoint" in err
    assert "'000002' (step 2, weights)" in err
    assert "'interrupted-000003' (step 3, training state only)" in err
    err = _error(capsys, "--model", f"{unfinished}:7")
    assert "valid steps: 2 ('000002')" in err
    err = _error(capsys, "--model", str(tmp_path))
    assert "not a run directory (config.json missing)" in err
    err = _error(capsys, "--model-path", str(tmp_path))
    assert "has no config.json; give a Hugging Face model directory" in err
    llm = ("llm.backend=openai_compat", "llm.openai_compat.model=m")
    err = _error(capsys, "--model", f"{unfinished}:2", *llm)
    assert "llm.backend is 'openai_compat': drop one of the two" in err
    assert "--renderer applies to --model-path only" in _error(
        capsys, "--model", str(unfinished), "--renderer", "llama3"
    )
    assert "--num-samples is 0" in _error(capsys, "--num-samples", "0")
    assert main(["eval", "--samples", "s.jsonl", "--model", "a", "--model-path", "b"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_llm_gets_message_lists_as_they_are_and_the_sampling_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    samples = _samples(Path("s.jsonl"))
    with FakeOpenAI() as server:
        code = main(
            [
                "eval",
                "--samples",
                samples,
                "--generate",
                "--out",
                "r.jsonl",
                "--temperature",
                "0.5",
                "--seed",
                "1",
                "--num-samples",
                "2",
                "llm.backend=openai_compat",
                f"llm.openai_compat.base_url={server.url}",
                "llm.openai_compat.model=fake",
                "llm.openai_compat.max_retries=0",
                *NOOP,
            ]
        )
        bodies = [request["body"] for request in server.requests]
    assert code == 0, capsys.readouterr().err
    assert _outputs(Path("r.jsonl")) == {
        "a#0": "echo: What is 3 + 4?",
        "a#1": "echo: What is 3 + 4?",
        "b#0": "echo: What is 10 + 5?",
        "b#1": "echo: What is 10 + 5?",
    }
    conversations = [body["messages"] for body in bodies]
    assert SAMPLES[1]["input"] in conversations  # passed through, system message included
    assert {body["temperature"] for body in bodies} == {0.5}
    assert len({body["seed"] for body in bodies}) == 4  # one seed per answer
