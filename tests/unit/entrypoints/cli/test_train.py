"""``crucible-train train``: options, the refusals of its plan (resume, start from SFT), and
the command's plumbing around a fake recipe job (no torch, except for the model facts)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from crucible_train.container import TRAIN_RECIPES, load_config, run_store
from crucible_train.core.config_dump import dump_config
from crucible_train.core.training.checkpoints import CheckpointLog, CheckpointRecord
from crucible_train.core.training.job import JobContext, LoopResult
from crucible_train.entrypoints.cli.main import _build_parser, main
from crucible_train.entrypoints.cli.train import (
    EXIT_BACKEND_FAILED,
    run_train,
    train_options_from_args,
)
from crucible_train.entrypoints.planning import TrainOptions
from crucible_train.errors import ConfigurationError, RewardError, TrainingClientError
from tiny_runs import TINY_MODEL

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


# --- what the plan refuses ----------------------------------------------------------------


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


def test_a_run_dir_holding_a_run_needs_resume(tmp_path: Path, sft_run, checkpoint) -> None:
    sft_run(tmp_path, "old", [checkpoint(2)])
    with pytest.raises(ConfigurationError, match="already holds a run; add --resume"):
        run_train(
            TrainOptions(recipe="sft", overrides=NOOP, run_dir=str(tmp_path / "old")),
            stderr=io.StringIO(),
        )


def test_start_from_sft_refuses_a_different_chat_format(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    run = sft_run(tmp_path / "runs", "sft-20260101-000000", [checkpoint(4, final=True)])
    _saved_config(run, "tokenizer.byte_level.vocab_size=1024")
    with pytest.raises(ConfigurationError) as info:
        run_train(
            TrainOptions(recipe="rl", overrides=(*NOOP, "train.rl.start_from_step=null")),
            stderr=io.StringIO(),
        )
    assert "same chat format" in str(info.value)
    assert "tokenizer.byte_level.vocab_size: 1024 -> 512" in str(info.value)


def test_distill_refuses_a_teacher_with_another_renderer(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    run = sft_run(tmp_path / "runs", "sft-20260101-000000", [checkpoint(4, final=True)])
    _saved_config(run, "train.renderer=llama3")
    with pytest.raises(ConfigurationError, match="teacher and student must use the same"):
        run_train(TrainOptions(recipe="distill", overrides=NOOP), stderr=io.StringIO())


def test_distill_without_any_sft_run_needs_a_teacher() -> None:
    with pytest.raises(ConfigurationError, match="distill needs a teacher"):
        run_train(TrainOptions(recipe="distill", overrides=NOOP), stderr=io.StringIO())


# --- the command around a fake recipe job -------------------------------------------------


@attrs.frozen(kw_only=True)
class FakeConfig:
    steps: int = 3
    stop_at: int | None = None
    fail_at: int | None = None
    reward: Any = None
    reward_fails: bool = False


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
                if config.reward_fails:
                    raise RewardError("reward component 'picky' failed on 3 of 8 rows")
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
    assert "parameters" not in out.getvalue()  # the noop model_info knows no model


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

    from crucible_train.entrypoints.cli.train import _sigint_stops

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


def test_only_a_reward_that_needs_a_client_gets_it_and_a_reward_failure_exits_2(
    fake_recipe: FakeRecipe, capsys: pytest.CaptureFixture[str]
) -> None:
    judged = _fake_overrides(steps=1, reward=[{"name": "judge"}, "semantic_similarity"])
    assert main(["train", "fake", *judged]) == 0
    assert main(["train", "fake", *_fake_overrides(steps=1, reward="exact_match")]) == 0
    with_clients, without = fake_recipe.contexts
    assert with_clients.llm is not None
    assert with_clients.embedding is not None
    assert (without.llm, without.embedding) == (None, None)
    assert main(["train", "fake", *_fake_overrides(reward_fails=True)]) == 2
    assert "failed on 3 of 8 rows" in capsys.readouterr().err


TINY = TINY_MODEL


@pytest.mark.torch
def test_the_summary_reports_the_trained_models_facts(fake_recipe: FakeRecipe) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    overrides = (*TINY, "sampling.backend=noop", "metrics.sinks=[files]", 'train.fake={"steps": 1}')
    out = io.StringIO()
    assert run_train(TrainOptions(recipe="fake", overrides=overrides), stdout=out) == 0
    training = fake_recipe.contexts[0].training
    try:
        # The trained model itself, counted the way the model_info port counts.
        expected = sum(p.numel() for p in training.model.parameters())  # type: ignore[attr-defined]
    finally:
        training.close()  # type: ignore[attr-defined]
    rows = _summary_rows(out.getvalue())
    assert rows["model"] == "qwen3, 1 layers, hidden 32, 2 heads, vocab 512, context 2048"
    assert rows["parameters"] == f"{expected:,}"


def _summary_rows(table: str) -> dict[str, str]:
    """The summary table's ``what -> value`` rows."""
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines()]
    return {row[0]: row[1] for row in cells if len(row) == 2}
