"""What ``eval --model`` / ``--model-path`` sample: checkpoint choice, config updates, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_train.container import load_config
from crucible_train.core.config_dump import dump_config
from crucible_train.core.training.checkpoints import CheckpointRecord
from crucible_train.entrypoints.eval_models import (
    choose_model,
    model_from_directory,
    model_from_run,
)
from crucible_train.entrypoints.planning import as_overrides
from crucible_train.errors import ConfigurationError


def _save_config(run: Path, *overrides: str) -> None:
    resolved = load_config(None, list(overrides))
    (run / "config.json").write_text(
        json.dumps(dump_config(resolved.as_dict(), secrets=resolved.secret_values()))
    )


@pytest.fixture
def run(tmp_path: Path, sft_run, checkpoint) -> Path:
    """A finished local run: checkpoints at steps 2 and 4 (final), a 1024-id tokenizer."""
    made = sft_run(tmp_path, "sft-1", [checkpoint(2), checkpoint(4, final=True)])
    _save_config(
        made,
        "training.local_torch.hidden_size=32",
        "training.local_torch.lora_rank=4",
        "tokenizer.byte_level.vocab_size=1024",
        "train.renderer=role_colon",
    )
    return made


def test_the_final_checkpoint_is_sampled_as_the_run_was_configured(run: Path) -> None:
    model = model_from_run(str(run))
    assert model.identity == {
        "run_dir": str(run),
        "checkpoint": "final",
        "step": 4,
        "sampler_path": "w/final",
    }
    assert "checkpoint 'final' (step 4, local_torch)" in model.label
    resolved = load_config(None, as_overrides(model.updates)).as_dict()
    sampling = resolved["sampling"]
    assert sampling["backend"] == "local_torch"
    assert sampling["local_torch"]["model_path"].endswith("w/final")
    assert sampling["local_torch"]["lora_rank"] == 0  # the sampler weights are merged
    assert resolved["tokenizer"]["byte_level"]["vocab_size"] == 1024
    assert resolved["train"]["renderer"] == "role_colon"


def test_a_step_or_a_name_picks_that_checkpoint(run: Path) -> None:
    assert model_from_run(f"{run}:2").identity["checkpoint"] == "000002"
    assert model_from_run(f"{run}:000002").identity["step"] == 2
    assert model_from_run(f"{run}:final").identity["step"] == 4


def test_a_missing_step_lists_the_valid_ones(run: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        model_from_run(f"{run}:3")
    message = str(info.value)
    assert "no checkpoint with weights at step 3" in message
    assert "valid steps: 2 ('000002'), 4 ('final')" in message


def test_a_run_without_a_finished_checkpoint_lists_its_checkpoints(
    tmp_path: Path, sft_run, checkpoint
) -> None:
    interrupted = CheckpointRecord(name="interrupted-000003", step=3, state_path="s/i")
    made = sft_run(tmp_path, "sft-2", [checkpoint(2), interrupted])
    _save_config(made)
    with pytest.raises(ConfigurationError) as info:
        model_from_run(str(made))
    message = str(info.value)
    assert "has no finished checkpoint" in message
    assert "'000002' (step 2, weights)" in message
    assert "'interrupted-000003' (step 3, training state only)" in message
    assert f"{made}:STEP" in message


def test_start_is_the_checkpoint_the_run_started_from(run: Path, tmp_path: Path) -> None:
    rl = tmp_path / "rl-1"
    rl.mkdir()
    _save_config(rl)
    start = {"run_dir": str(run), "record": {"name": "000002", "step": 2, "sampler_path": "w/2"}}
    (rl / "started_from.json").write_text(json.dumps({**start, "role": "weights"}))
    model = model_from_run(f"{rl}:start")
    assert model.identity["sampler_path"] == "w/2"
    assert str(run) in model.label
    with pytest.raises(ConfigurationError, match="did not start from a checkpoint"):
        model_from_run(f"{run}:start")


def test_not_a_run_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a directory"):
        model_from_run(str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"not a run directory \(config.json missing\)"):
        model_from_run(str(tmp_path))


def test_a_run_without_weights_is_refused(tmp_path: Path, sft_run, checkpoint) -> None:
    made = sft_run(tmp_path, "sft-3", [checkpoint(1, final=True)])
    _save_config(made, "training.backend=noop")
    with pytest.raises(ConfigurationError, match=r"training\.backend=noop"):
        model_from_run(str(made))


def test_a_tinker_run_samples_its_tinker_sampler_path(
    tmp_path: Path, sft_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINKER_API_KEY", "tml-secret")
    final = CheckpointRecord(
        name="final",
        step=9,
        state_path="tinker://run/weights/final",
        sampler_path="tinker://run/sampler_weights/final",
        final=True,
    )
    made = sft_run(tmp_path, "sft-4", [final])
    _save_config(
        made,
        "training.backend=tinker",
        "training.tinker.base_model=Qwen/Qwen3-8B",
        "training.tinker.lora_rank=8",
    )
    assert "tml-secret" not in (made / "config.json").read_text()  # redacted
    model = model_from_run(str(made))
    assert "sampling.tinker.api_key" not in model.updates  # the environment gives it again
    sampling = load_config(None, as_overrides(model.updates)).as_dict()["sampling"]
    assert sampling["backend"] == "tinker"
    assert sampling["tinker"]["model_path"] == "tinker://run/sampler_weights/final"
    assert sampling["tinker"]["base_model"] == "Qwen/Qwen3-8B"
    assert sampling["tinker"]["lora_rank"] == 8


def test_model_path_must_be_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a directory"):
        model_from_directory(str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"has no config\.json; give a Hugging Face"):
        model_from_directory(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    model = model_from_directory(str(tmp_path), "llama3")
    assert model.updates == {
        "sampling.backend": "local_torch",
        "sampling.local_torch.model_path": str(tmp_path),
        "train.renderer": "llama3",
    }
    assert model.identity == {"model_path": str(tmp_path)}


def test_choose_model_is_none_without_either_option() -> None:
    assert choose_model(model=None, model_path=None) is None


def test_a_moved_run_finds_its_checkpoints_inside_it(tmp_path: Path, sft_run) -> None:
    old = "/gone/runs/sft-5/checkpoints/final-sampler"
    final = CheckpointRecord(name="final", step=1, sampler_path=old, final=True)
    made = sft_run(tmp_path, "sft-5", [final])
    _save_config(made)
    assert model_from_run(str(made)).identity["sampler_path"] == old  # nothing there either
    (made / "checkpoints" / "final-sampler").mkdir(parents=True)
    moved = str(made / "checkpoints" / "final-sampler")
    model = model_from_run(str(made))
    assert model.updates["sampling.local_torch.model_path"] == moved
    assert model.identity["sampler_path"] == moved
