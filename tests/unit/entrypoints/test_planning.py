"""Planning a ``train`` run: configuration comparisons, the SFT starting point, the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_train.container import TRAIN_KEY, TRAIN_RECIPES
from crucible_train.entrypoints.planning import (
    TrainOptions,
    as_overrides,
    choose_start,
    config_differences,
    format_mismatches,
    plan_run,
)

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


def test_resume_does_not_compare_the_model_info_block() -> None:
    # model_info describes the model for the summary; it does not shape the run.
    saved = {"model_info": {"local_torch": {"model_path": None}}, "train": {"sft": {}}}
    current = {"model_info": {"local_torch": {"model_path": "/sft/final"}}, "train": {"sft": {}}}
    assert config_differences(saved, current, recipe="sft") == []


# --- the SFT checkpoint to start from -----------------------------------------------------


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
    tmp_path: Path, recipe: str, backend: str, expected: list[str], sft_run, checkpoint
) -> None:
    data = {
        "training": {"backend": backend},
        "sampling": {"backend": backend},
        "tokenizer": {"backend": "byte_level", "byte_level": {}},
        TRAIN_KEY: {"renderer": "qwen3_instruct"},
    }
    run = sft_run(tmp_path, "sft-20260101-000000", [checkpoint(4, final=True)])
    (run / "config.json").write_text(json.dumps(data))
    said: list[str] = []
    start = choose_start(
        TrainOptions(recipe=recipe),
        data,
        run_dir=tmp_path / "new",
        runs_root=tmp_path,
        settings={"student": {}},
        say=said.append,
    )
    assert as_overrides(start.updates) == expected
    assert start.started_from is not None
    assert start.started_from.run_dir == run
    assert start.role == ("teacher" if recipe == "distill" else "weights")
    assert said == [
        f"{recipe}: {start.role} from SFT run {run} checkpoint 'final' (step 4)",
    ]


# --- the plan -----------------------------------------------------------------------------


def test_the_plan_decides_everything_and_writes_nothing(tmp_path: Path) -> None:
    plan = plan_run(TrainOptions(recipe="sft", overrides=NOOP), say=print)
    assert plan.run_dir.parent == tmp_path / "runs"
    assert plan.run_dir.name.startswith("sft-")
    assert not (tmp_path / "runs").exists()  # nothing written yet
    data = plan.config.as_dict()
    assert data["metrics"]["run_dir"] == str(plan.run_dir)
    assert data["training"]["noop"] == {}
    assert plan.logged_config["metrics"]["run_dir"] == str(plan.run_dir)
    assert plan.recipe_config == TRAIN_RECIPES["sft"].config_class()
    assert plan.job is TRAIN_RECIPES["sft"].job
    assert plan.renderer == data["train"]["renderer"]
    assert plan.started_from is None
    assert not plan.resume
    assert not plan.needs_teacher
    assert plan.describe_model  # noop describes noop: asked, knows nothing


SHAPE = ("training.local_torch.hidden_size=64", "training.local_torch.num_layers=2")


def test_model_info_follows_the_trained_local_model() -> None:
    plan = plan_run(
        TrainOptions(recipe="sft", overrides=(*SHAPE, "metrics.sinks=[files]")), say=print
    )
    data = plan.config.as_dict()
    training, described = data["training"]["local_torch"], data["model_info"]["local_torch"]
    assert plan.describe_model
    assert described["hidden_size"] == training["hidden_size"] == 64
    assert described["num_layers"] == training["num_layers"] == 2
    # Only the model's settings follow: the run directory stays the training side's.
    assert training["checkpoint_dir"] == str(plan.run_dir / "checkpoints")
    assert described["checkpoint_dir"] != training["checkpoint_dir"]


def test_model_info_describing_another_backend_is_not_asked() -> None:
    plan = plan_run(
        TrainOptions(recipe="sft", overrides=(*SHAPE, "training.backend=noop")), say=print
    )
    assert not plan.describe_model
    # ... and its settings are left as configured.
    assert plan.config.as_dict()["model_info"]["local_torch"]["hidden_size"] == 128


def test_the_default_sft_plan_leaves_model_info_as_configured() -> None:
    # The defaults already agree: no override, so config.json is what it always was.
    plan = plan_run(TrainOptions(recipe="sft", overrides=("metrics.sinks=[files]",)), say=print)
    assert not any(source.find("model_info") >= 0 for source in plan.config.sources)
