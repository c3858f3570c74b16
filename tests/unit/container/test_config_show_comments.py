"""``crucible-train config show``: every key carries its description as a YAML comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from crucible_train.adapters.huggingface.settings import HuggingFaceHubSettings
from crucible_train.adapters.wandb.settings import WandbMetricsSinkSettings
from crucible_train.container import TRAIN_RECIPES, load_config
from crucible_train.container.describe import annotated_yaml, field_descriptions, yaml_value
from crucible_train.entrypoints.cli.main import main

SECRET = "wb_Shown_Never_4471"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def _show(capsys: pytest.CaptureFixture[str], *overrides: str) -> str:
    assert main(["config", "show", *overrides]) == 0
    return capsys.readouterr().out


def _comments(text: str) -> dict[str, str]:
    """Dotted key → the comment after it (the text after the last ' # ')."""
    found: dict[str, str] = {}
    stack: list[str] = []
    for line in text.splitlines():
        match = KEY_LINE.match(line)
        if match is None:
            continue
        stack = [*stack[: len(match.group("indent")) // 2], match.group("key")]
        _value, sep, comment = match.group("rest").rpartition(" # ")
        found[".".join(stack)] = comment if sep else ""
    return found


def test_every_key_has_a_comment_and_the_yaml_round_trips(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = _show(capsys)
    assert text.startswith("# from: ")
    comments = _comments(text)
    assert len(comments) > 100
    assert [key for key, comment in comments.items() if not comment] == []
    assert yaml.safe_load(text) == load_config(environ={}).as_dict()


def test_field_comments_are_the_settings_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    comments = _comments(_show(capsys))
    for name, description in field_descriptions(HuggingFaceHubSettings).items():
        assert comments[f"hub.huggingface.{name}"] == description
    sft = TRAIN_RECIPES["sft"].load_config_class()
    for name, description in field_descriptions(sft).items():
        assert comments[f"train.sft.{name}"] == description
    assert comments["training.backend"] == (
        "the adapter serving this port: one of local_torch, noop, tinker"
    )
    assert comments["training.local_torch"] == "settings of LocalTorchTrainingClient"
    assert comments["training"].startswith("TrainingClient: ")


def test_selected_backends_are_described_and_secrets_stay_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    text = _show(capsys, "metrics.sinks=[files, wandb]", "metrics.wandb.project=p")
    assert SECRET not in text
    comments = _comments(text)
    for name, description in field_descriptions(WandbMetricsSinkSettings).items():
        assert comments[f"metrics.wandb.{name}"] == description
    wandb = yaml.safe_load(text)["metrics"]["wandb"]
    assert wandb["api_key"] == "***"
    assert wandb["project"] == "p"


def test_a_mapping_setting_stays_on_its_key_line(capsys: pytest.CaptureFixture[str]) -> None:
    text = _show(capsys)
    (student,) = [line for line in text.splitlines() if line.startswith("    student: {")]
    assert " # local-engine settings" in student
    assert "train.distill.student.hidden_size" not in _comments(text)


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, 1e-8, "***", "a # b", "line\nbreak\ninjected: 1", [], {}, ["x", 1], "'q'"],
)
def test_values_round_trip_on_one_line(value: object) -> None:
    assert "\n" not in yaml_value(value)
    data = {"block": {"key": value}}
    text = annotated_yaml(data, {("block", "key"): "a description"}, frozenset({("block",)}))
    assert len(text.splitlines()) == 2
    assert text.splitlines()[1].endswith(" # a description")
    assert yaml.safe_load(text) == data


def test_a_subclass_inherits_its_bases_descriptions_and_may_narrow_them():
    from crucible_train.container.describe import field_descriptions

    class Loop:
        """A loop.

        Args:
            seed: seeds the shuffles.
            steps: how many steps.
        """

    class Recipe(Loop):
        """A recipe.

        Args:
            seed: seeds the shuffles and the problems.
            size: problems per split.
        """

    assert field_descriptions(Recipe) == {
        "seed": "seeds the shuffles and the problems",
        "steps": "how many steps",
        "size": "problems per split",
    }
    assert field_descriptions(Loop) == {"seed": "seeds the shuffles", "steps": "how many steps"}
