"""``crucible-train train``: options, run directories, start-from-SFT, resume checks, plots,
progress lines, and the command's plumbing around a fake recipe job (no torch)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from crucible_train.cli import _build_parser, main
from crucible_train.container import TRAIN_RECIPES, load_config, run_store
from crucible_train.core.config_dump import dump_config
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.errors import ConfigurationError, TrainingClientError
from crucible_train.plots import read_curves, write_plots
from crucible_train.train_cli import (
    EXIT_BACKEND_FAILED,
    ConsoleProgress,
    TrainOptions,
    config_differences,
    find_sft_start,
    format_mismatches,
    latest_run,
    new_run_dir,
    run_train,
    train_options_from_args,
)

# Fast, torch-free backends for the command's plumbing.
NOOP = (
    "training.backend=noop",
    "sampling.backend=noop",
    "model_info.backend=noop",
    "metrics.sinks=[files]",
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)


# --- options ------------------------------------------------------------------------------


def test_arguments_are_parsed_into_options() -> None:
    args = _build_parser().parse_args(
        ["train", "rl", "train.rl.max_steps=3", "--run-dir", "r", "--resume", "--config", "c.yaml"]
    )
    assert train_options_from_args(args) == TrainOptions(
        recipe="rl",
        config_file="c.yaml",
        overrides=("train.rl.max_steps=3",),
        run_dir="r",
        resume=True,
        fresh=False,
        console_metrics=False,
    )


def test_unknown_recipe_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "ppo"]) == 2
    assert "invalid choice: 'ppo'" in capsys.readouterr().err


def test_help_lists_the_train_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


# --- run directories ----------------------------------------------------------------------


def test_new_run_dir_is_recipe_and_utc_timestamp(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = new_run_dir(tmp_path, "sft", now)
    assert first == tmp_path / "sft-20260102-030405"
    first.mkdir()
    assert new_run_dir(tmp_path, "sft", now) == tmp_path / "sft-20260102-030405-2"


def test_latest_run_sorts_by_timestamp_then_suffix(tmp_path: Path) -> None:
    assert latest_run(tmp_path / "missing", "sft") is None
    for name in ["sft-20260101-000000", "sft-20260102-000000", "sft-20260102-000000-2"]:
        (tmp_path / name).mkdir()
    (tmp_path / "rl-20270101-000000").mkdir()
    assert latest_run(tmp_path, "sft") == tmp_path / "sft-20260102-000000-2"
    assert latest_run(tmp_path, "rl") == tmp_path / "rl-20270101-000000"
    assert latest_run(tmp_path, "dpo") is None


def _sft_run(root: Path, name: str, records: list[CheckpointRecord]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    log = CheckpointLog(run_store(run))
    for record in records:
        log.append(record)
    return run


def _record(step: int, *, final: bool = False) -> CheckpointRecord:
    name = "final" if final else f"{step:06d}"
    return CheckpointRecord(
        name=name, step=step, state_path=f"s/{name}", sampler_path=f"w/{name}", final=final
    )


def test_latest_finished_sft_run_is_the_start(tmp_path: Path) -> None:
    assert find_sft_start(tmp_path) is None
    done = _sft_run(tmp_path, "sft-20260101-000000", [_record(2), _record(4, final=True)])
    # Newer, but interrupted: not a starting point.
    _sft_run(
        tmp_path,
        "sft-20260102-000000",
        [_record(2), CheckpointRecord(name="interrupted-000003", step=3, state_path="s/i")],
    )
    start = find_sft_start(tmp_path)
    assert start is not None
    assert start.run_dir == done
    assert start.record.final
    assert start.record.sampler_path == "w/final"
    at_two = find_sft_start(tmp_path, start_from_step=2)
    assert at_two is not None
    assert at_two.record.sampler_path == "w/000002"
    with pytest.raises(ConfigurationError, match="no checkpoint with weights at step 3; it has"):
        find_sft_start(tmp_path, start_from_step=3)


# --- configuration comparisons ------------------------------------------------------------


def test_config_differences_name_keys_and_ignore_the_run_dir() -> None:
    saved = {
        "metrics": {"run_dir": "/a", "sinks": ["files"]},
        "training": {"local_torch": {"checkpoint_dir": "/a/c", "seed": 0}},
        "train": {"sft": {"max_steps": 5}, "rl": {"max_steps": 1}},
    }
    current = {
        "metrics": {"run_dir": "/b", "sinks": ["files", "console"]},
        "training": {"local_torch": {"checkpoint_dir": "/b/c", "seed": 0}},
        "train": {"sft": {"max_steps": 6}, "rl": {"max_steps": 2}},
    }
    assert config_differences(saved, current, recipe="sft") == [
        'metrics.sinks: ["files"] -> ["files", "console"]',
        "train.sft.max_steps: 5 -> 6",
    ]
    assert config_differences(saved, saved, recipe="sft") == []


def test_format_mismatches_compare_renderer_and_selected_tokenizer() -> None:
    sft = {
        "train": {"renderer": "qwen3_instruct"},
        "tokenizer": {"backend": "byte_level", "byte_level": {"vocab_size": 512}},
    }
    same = json.loads(json.dumps(sft))
    assert format_mismatches(sft, same) == []
    other = {
        "train": {"renderer": "llama3"},
        "tokenizer": {"backend": "byte_level", "byte_level": {"vocab_size": 1024}},
    }
    assert format_mismatches(sft, other) == [
        'renderer: "qwen3_instruct" -> "llama3"',
        "tokenizer.byte_level.vocab_size: 512 -> 1024",
    ]


def _saved_config(run_dir: Path, *overrides: str) -> None:
    resolved = load_config(None, [*NOOP, *overrides])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(
        json.dumps(dump_config(resolved.as_dict(), secrets=resolved.secret_values()))
    )


def test_resume_refuses_a_changed_configuration_naming_the_keys(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "sft-20260101-000000"
    _saved_config(run, "train.sft.max_steps=5", f"metrics.run_dir={run}")
    options = TrainOptions(
        recipe="sft",
        overrides=(*NOOP, "train.sft.max_steps=6", "train.sft.seed=3"),
        resume=True,  # no --run-dir: the latest sft run
    )
    with pytest.raises(ConfigurationError) as info:
        run_train(options, stdout=io.StringIO(), stderr=io.StringIO())
    message = str(info.value)
    assert "configuration differs" in message
    assert "train.sft.max_steps: 5 -> 6" in message
    assert "train.sft.seed: 0 -> 3" in message
    assert "metrics.run_dir" not in message


def test_resume_without_a_run_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "sft", "--resume", *NOOP]) == 2
    assert "error: --resume: no sft run under" in capsys.readouterr().err


def test_a_run_dir_holding_a_run_needs_resume(tmp_path: Path) -> None:
    _sft_run(tmp_path, "old", [_record(2)])
    with pytest.raises(ConfigurationError, match="already holds a run; add --resume"):
        run_train(
            TrainOptions(recipe="sft", overrides=NOOP, run_dir=str(tmp_path / "old")),
            stderr=io.StringIO(),
        )


def test_start_from_sft_refuses_a_different_chat_format(tmp_path: Path) -> None:
    run = _sft_run(tmp_path / "runs", "sft-20260101-000000", [_record(4, final=True)])
    _saved_config(run, "tokenizer.byte_level.vocab_size=1024")
    with pytest.raises(ConfigurationError) as info:
        run_train(
            TrainOptions(recipe="rl", overrides=(*NOOP, "train.rl.start_from_step=null")),
            stderr=io.StringIO(),
        )
    assert "same chat format" in str(info.value)
    assert "tokenizer.byte_level.vocab_size: 1024 -> 512" in str(info.value)


def test_distill_refuses_a_teacher_with_another_renderer(tmp_path: Path) -> None:
    run = _sft_run(tmp_path / "runs", "sft-20260101-000000", [_record(4, final=True)])
    _saved_config(run, "train.renderer=llama3")
    with pytest.raises(ConfigurationError, match="teacher and student must use the same"):
        run_train(TrainOptions(recipe="distill", overrides=NOOP), stderr=io.StringIO())


def test_distill_without_any_sft_run_needs_a_teacher() -> None:
    with pytest.raises(ConfigurationError, match="distill needs a teacher"):
        run_train(TrainOptions(recipe="distill", overrides=NOOP), stderr=io.StringIO())


# --- plots --------------------------------------------------------------------------------


def _metrics_file(run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "step": s,
            "train/nll": 3.0 - 0.1 * s,
            "lr": 0.1,
            "reward/mean": 0.1 * s,
            "num_loss_tokens": 27,
            "test/nll/weight": 27,
        }
        for s in range(10)
    ]
    rows.append({"step": 9, "test/accuracy": 0.5, "test/nll": "NaN"})
    rows.append({"no_step": 1})
    lines = [json.dumps(r) for r in rows] + ['{"step": 10, "train/nll"']  # torn line
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_read_curves_skips_torn_lines_and_non_finite_values(tmp_path: Path) -> None:
    _metrics_file(tmp_path)
    curves = read_curves(tmp_path / "metrics.jsonl")
    assert sorted(curves) == [
        "lr",
        "num_loss_tokens",
        "reward/mean",
        "test/accuracy",
        "test/nll/weight",
        "train/nll",
    ]
    assert curves["train/nll"][0] == (0, 3.0)
    assert len(curves["train/nll"]) == 10


def test_plots_one_png_per_family_present(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _metrics_file(tmp_path)
    written = write_plots(tmp_path)
    assert [p.name for p in written] == ["loss.png", "accuracy.png", "reward.png"]
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]
    assert write_plots(tmp_path / "empty") == []


# --- progress -----------------------------------------------------------------------------


def test_progress_on_a_non_terminal_prints_occasional_plain_lines() -> None:
    stream = io.StringIO()
    now = [100.0]
    progress = ConsoleProgress(stream, is_terminal=False, every_s=10.0, clock=lambda: now[0])
    progress.start(total_steps=100, first_step=20, description="sft")
    for step in range(20, 100):
        now[0] += 1.0
        progress.advance(step, {"train/nll": 2.5, "num_tokens": 9.0, "lr": 0.001})
    progress.note("saved checkpoint")
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sft: 100 steps from step 20"
    assert lines[1] == "sft step 30/100 (30%) elapsed 0:10 eta 1:10 train/nll=2.5 lr=0.001"
    assert lines[-2].startswith("sft step 100/100 (100%) elapsed 1:20 eta 0:00")
    assert lines[-1] == "saved checkpoint"
    assert len(lines) == 1 + 8 + 1  # start, one line per 10 s (the last step's too), the note
    assert "\x1b[" not in stream.getvalue()


def test_progress_on_a_terminal_draws_a_bar_with_metrics() -> None:
    stream = io.StringIO()
    progress = ConsoleProgress(stream, is_terminal=True)
    progress.start(total_steps=4, first_step=0, description="sft")
    for step in range(4):
        progress.advance(step, {"train/nll": 1.25})
    progress.finish()
    text = stream.getvalue()
    assert "4/4" in text
    assert "train/nll=1.25" in text


# --- the command around a fake recipe job -------------------------------------------------


@attrs.frozen(kw_only=True)
class FakeConfig:
    steps: int = 3
    stop_at: int | None = None
    fail_at: int | None = None


@attrs.define
class FakeRecipe:
    """Stands in for a recipe entry of TRAIN_RECIPES; its job writes what a loop writes."""

    contexts: list[JobContext] = attrs.Factory(list)

    def load_config_class(self) -> type:
        return FakeConfig

    def load_job(self) -> Any:
        def job(ctx: JobContext, config: FakeConfig) -> LoopResult:
            self.contexts.append(ctx)
            log = CheckpointLog(ctx.run_store)
            last = log.last_resumable()
            first = last.step if ctx.resume and last is not None else 0
            ctx.progress.start(config.steps, first, "fake")
            metrics: Mapping[str, float] = {}
            step = first
            while step < config.steps:
                if config.stop_at == step:
                    ctx.stop.set()  # what the first Ctrl-C does
                if ctx.stop.is_set():
                    break
                if config.fail_at == step:
                    raise TrainingClientError("server said: model 'm1' is gone (HTTP 404)")
                if step == 2:
                    log.append(CheckpointRecord(name="000002", step=2, state_path="s2"))
                metrics = {"train/nll": 2.0 - step / 10}
                ctx.metrics.log_metrics(metrics, step=step)
                ctx.progress.advance(step, metrics)
                step += 1
            interrupted = step < config.steps
            name = f"interrupted-{step:06d}" if interrupted else "final"
            record = CheckpointRecord(
                name=name, step=step, state_path=name, sampler_path=name, final=not interrupted
            )
            log.append(record)
            ctx.progress.finish()
            return LoopResult(
                steps_done=step,
                total_steps=config.steps,
                interrupted=interrupted,
                resumed_from=first if ctx.resume else None,
                final_record=record,
                last_metrics=dict(metrics),
            )

        return job


@pytest.fixture
def fake_recipe(monkeypatch: pytest.MonkeyPatch) -> FakeRecipe:
    recipe = FakeRecipe()
    monkeypatch.setitem(TRAIN_RECIPES, "fake", recipe)  # type: ignore[arg-type]
    return recipe


def _fake_overrides(**settings: Any) -> tuple[str, ...]:
    return (*NOOP, f"train.fake={json.dumps(settings)}")


def test_train_writes_the_run_dir_and_a_summary(
    tmp_path: Path, fake_recipe: FakeRecipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    out, err = io.StringIO(), io.StringIO()
    code = run_train(
        TrainOptions(recipe="fake", overrides=_fake_overrides(steps=3)), stdout=out, stderr=err
    )
    assert code == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("fake-")
    names = {p.name for p in run.iterdir()}
    assert {"metrics.jsonl", "config.json", "checkpoints.jsonl"} <= names
    config_text = (run / "config.json").read_text()
    assert "hf_secret_value" not in config_text
    config = json.loads(config_text)
    assert config["metrics"]["run_dir"] == str(run)
    assert config["metrics"]["sinks"] == ["files"]
    assert config["training"] == {"backend": "noop", "noop": {}}  # local_torch unselected
    assert "status" in out.getvalue()
    assert "finished" in out.getvalue()
    assert run.name in out.getvalue()
    assert fake_recipe.contexts[0].run_store.location == str(run)
    assert not fake_recipe.contexts[0].resume
    assert f"fake: run directory {run}" in err.getvalue()


def test_console_sink_gives_way_to_the_progress_bar_unless_asked(
    tmp_path: Path, fake_recipe: FakeRecipe
) -> None:
    both = (*_fake_overrides(steps=1), "metrics.sinks=[files, console]")
    for keep, run in ((False, "a"), (True, "b")):
        options = TrainOptions(
            recipe="fake", overrides=both, run_dir=str(tmp_path / run), console_metrics=keep
        )
        assert run_train(options, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    sinks = [
        json.loads((tmp_path / run / "config.json").read_text())["metrics"]["sinks"]
        for run in ("a", "b")
    ]
    assert sinks == [["files"], ["files", "console"]]


def test_interrupted_run_exits_130_and_resume_finishes_it(
    tmp_path: Path, fake_recipe: FakeRecipe
) -> None:
    run = tmp_path / "the-run"
    err = io.StringIO()
    code = run_train(
        TrainOptions(
            recipe="fake", overrides=_fake_overrides(steps=5, stop_at=2), run_dir=str(run)
        ),
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == 130
    assert f"crucible-train train fake --run-dir {run} --resume" in err.getvalue()
    assert CheckpointLog(run_store(run)).records()[-1].name == "interrupted-000002"
    # Resuming needs the same configuration ...
    with pytest.raises(ConfigurationError, match=r"train\.fake\.stop_at: 2 -> null"):
        run_train(
            TrainOptions(
                recipe="fake", overrides=_fake_overrides(steps=5), run_dir=str(run), resume=True
            ),
            stderr=io.StringIO(),
        )
    code = run_train(
        TrainOptions(
            recipe="fake",
            overrides=_fake_overrides(steps=5, stop_at=2),
            run_dir=str(run),
            resume=True,
        ),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    # stop_at=2 is behind the resume point (2 is where it starts): it stops at once.
    assert code == 130
    assert fake_recipe.contexts[-1].resume


def test_first_sigint_sets_stop_and_the_second_aborts() -> None:
    import signal

    from crucible_train.train_cli import _sigint_stops

    stop = threading.Event()
    said: list[str] = []
    # Whatever was there before comes back (SIG_IGN when started in the background).
    before = signal.getsignal(signal.SIGINT)
    with _sigint_stops(stop, said.append):
        signal.raise_signal(signal.SIGINT)
        assert stop.is_set()
        assert "Ctrl-C again aborts" in said[0]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize(("fail_at", "resumable"), [(1, None), (4, "'000002' (step 2)")])
def test_backend_failure_exits_4_with_the_servers_words_and_how_to_resume(
    tmp_path: Path, fake_recipe: FakeRecipe, fail_at: int, resumable: str | None
) -> None:
    run = tmp_path / "the-run"
    out, err = io.StringIO(), io.StringIO()
    code = run_train(
        TrainOptions(
            recipe="fake", overrides=_fake_overrides(steps=6, fail_at=fail_at), run_dir=str(run)
        ),
        stdout=out,
        stderr=err,
    )
    assert code == EXIT_BACKEND_FAILED == 4
    text = err.getvalue()
    assert "the backend failed (TrainingClientError): server said: model 'm1' is gone" in text
    assert f"crucible-train train fake --run-dir {run} --resume" in text
    if resumable is None:
        assert "no resumable checkpoint was saved yet" in text
    else:
        assert f"the last resumable checkpoint is {resumable}" in text
    assert "finished" not in out.getvalue()  # no summary table for a failed run
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(fail_at))  # nothing logged was lost


@pytest.mark.parametrize(
    ("recipe", "backend", "expected"),
    [
        ("rl", "local_torch", ['training.local_torch.model_path="w/final"']),
        ("dpo", "tinker", ['training.tinker.model_path="s/final"']),
        # distill with an empty student: teacher samples, student trains from the state
        (
            "distill",
            "tinker",
            ['sampling.tinker.model_path="w/final"', 'training.tinker.model_path="s/final"'],
        ),
    ],
)
def test_start_from_sft_uses_the_path_the_selected_backend_loads(
    tmp_path: Path, recipe: str, backend: str, expected: list[str]
) -> None:
    from crucible_train.train_cli import TRAIN_KEY, _Plan, _plan_start

    data = {
        "training": {"backend": backend},
        "sampling": {"backend": backend},
        "tokenizer": {"backend": "byte_level", "byte_level": {}},
        TRAIN_KEY: {"renderer": "qwen3_instruct"},
    }
    run = _sft_run(tmp_path, "sft-20260101-000000", [_record(4, final=True)])
    (run / "config.json").write_text(json.dumps(data))
    plan = _Plan(run_dir=tmp_path / "new", overrides=[])
    said: list[str] = []
    _plan_start(TrainOptions(recipe=recipe), data, plan, tmp_path, {"student": {}}, said.append)
    assert plan.overrides == expected
    assert plan.started_from is not None
    assert plan.started_from.run_dir == run
