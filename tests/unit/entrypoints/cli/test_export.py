"""``crucible-train export``: a tiny trained run as a Hugging Face directory that transformers
(and peft) load with the engine's logits, and the refusals of bad input (exit 2, no
traceback, nothing written)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from crucible_train.adapters.local_torch.training_client import (  # noqa: E402
    LocalTorchTrainingClient,
)
from crucible_train.entrypoints.cli.export import stop_token_ids, tokenizer_files  # noqa: E402
from crucible_train.entrypoints.cli.main import main  # noqa: E402
from crucible_train.entrypoints.cli.train import run_train  # noqa: E402
from crucible_train.entrypoints.planning import TrainOptions  # noqa: E402
from crucible_train.entrypoints.run_dirs import run_checkpoint  # noqa: E402
from crucible_train.types import Datum, ModelInput  # noqa: E402
from tiny_runs import TINY_SFT  # noqa: E402

from vocab_paths import qwen3_dir  # noqa: E402

TINY = (*TINY_SFT, "train.sft.max_steps=2", "train.sft.save_every=1")
LORA = ("training.local_torch.lora_rank=4", "training.local_torch.lora_alpha=8.0")
TOKENS = [256, 257, 72, 101, 108, 108, 111, 258, 10, 300, 42, 7]


def _train(root: Path, *overrides: str) -> Path:
    options = TrainOptions(recipe="sft", overrides=(*TINY, *overrides, f"train.runs_root={root}"))
    assert run_train(options, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    (run,) = root.iterdir()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny finished SFT runs: qwen3, llama, and qwen3 with LoRA."""
    return {
        "qwen3": _train(tmp_path_factory.mktemp("qwen3")),
        "llama": _train(
            tmp_path_factory.mktemp("llama"), "training.local_torch.architecture=llama"
        ),
        "lora": _train(tmp_path_factory.mktemp("lora"), *LORA),
    }


def _engine_logprobs(run: Path) -> np.ndarray[Any, Any]:
    """What the engine's ``forward`` gives for TOKENS after loading the run's final state."""
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    settings = dict(config["training"]["local_torch"])
    settings["checkpoint_dir"] = str(run / "engine-checkpoints")
    state = run_checkpoint(run, None, what="test").record.state_path
    with LocalTorchTrainingClient(**settings) as client:
        client.load_state(str(state)).result(60)
        datum = Datum(
            model_input=ModelInput.from_ints(TOKENS[:-1]),
            loss_fn_inputs={
                "target_tokens": TOKENS[1:],
                "weights": np.ones(len(TOKENS) - 1, np.float32),
            },
        )
        output = client.forward([datum], "cross_entropy").result(60)
    return output.loss_fn_outputs[0]["logprobs"].to_numpy().astype(np.float64)


def _hf_logprobs(model: Any) -> np.ndarray[Any, Any]:
    with torch.no_grad():
        logits = model(torch.tensor([TOKENS[:-1]])).logits[0].double()
    chosen = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(TOKENS[1:])[:, None])
    return np.asarray(chosen[:, 0].numpy())


@pytest.mark.torch
@pytest.mark.parametrize("name", ["qwen3", "llama", "lora"])
def test_the_export_loads_in_transformers_with_the_engines_logprobs(
    runs: dict[str, Path], name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hf"
    assert main(["export", str(runs[name]), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    assert "byte_level has no Hugging Face tokenizer files" in capsys.readouterr().out
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.model_type == ("llama" if name == "llama" else "qwen3")
    np.testing.assert_allclose(_hf_logprobs(model), _engine_logprobs(runs[name]), atol=1e-5)
    generation = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    assert generation["eos_token_id"] == 258  # <|im_end|>, the qwen3 renderer's stop


@pytest.mark.torch
def test_a_step_is_exported_by_run_dir_colon_step(runs: dict[str, Path], tmp_path: Path) -> None:
    final, first = tmp_path / "final", tmp_path / "first"
    assert main(["export", str(runs["qwen3"]), "--out", str(final)]) == 0
    assert main(["export", f"{runs['qwen3']}:1", "--out", str(first)]) == 0
    one = transformers.AutoModelForCausalLM.from_pretrained(str(first))
    two = transformers.AutoModelForCausalLM.from_pretrained(str(final))
    assert not np.allclose(_hf_logprobs(one), _hf_logprobs(two))


@pytest.mark.torch
def test_a_lora_run_exports_a_peft_adapter(runs: dict[str, Path], tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    out = tmp_path / "adapter"
    assert main(["export", str(runs["lora"]), "--out", str(out), "--adapter"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "base_model",
        "generation_config.json",
    ]
    config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 8.0)
    assert config["base_model_name_or_path"] == str(out / "base_model")
    base = transformers.AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    model = peft.PeftModel.from_pretrained(base, str(out))
    np.testing.assert_allclose(_hf_logprobs(model), _engine_logprobs(runs["lora"]), atol=1e-5)


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["export", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.torch
def test_refusals_exit_2_and_say_why(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    err = _refused(capsys, str(runs["qwen3"]), "--out", str(out), "--merge-lora")
    assert "trained without LoRA" in err
    err = _refused(capsys, str(runs["qwen3"]), "--out", str(out), "--adapter")
    assert "there is no LoRA adapter" in err
    err = _refused(capsys, f"{runs['qwen3']}:7", "--out", str(out))
    assert "no checkpoint with weights at step 7" in err
    assert not out.exists()
    run = runs["qwen3"]
    assert "holds the run" in _refused(capsys, str(run), "--out", str(run.parent), "--force")
    assert (run / "config.json").is_file()
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert "not empty" in _refused(capsys, str(runs["qwen3"]), "--out", str(out))
    assert main(["export", str(runs["qwen3"]), "--out", str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists()


@pytest.mark.torch
def test_an_unfinished_run_lists_its_checkpoints(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "unfinished"
    run.mkdir()
    (run / "config.json").write_bytes((runs["qwen3"] / "config.json").read_bytes())
    lines = (runs["qwen3"] / "checkpoints.jsonl").read_text(encoding="utf-8").splitlines()
    (run / "checkpoints.jsonl").write_text(
        "".join(line + "\n" for line in lines if '"final": true' not in line), encoding="utf-8"
    )
    err = _refused(capsys, str(run), "--out", str(tmp_path / "out"))
    assert "has no finished checkpoint" in err
    assert "'000001' (step 1" in err


@pytest.mark.torch
def test_a_corrupted_checkpoint_is_named_and_nothing_is_written(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = run_checkpoint(runs["lora"], "1", what="test").record
    weights = Path(str(record.sampler_path)) / "model.safetensors"
    state = Path(str(record.state_path)) / "weights.safetensors"
    out = tmp_path / "out"
    for path, args in ((weights, ()), (state, ("--adapter",))):
        original = path.read_bytes()
        try:
            path.write_bytes(original[: len(original) // 2])
            err = _refused(capsys, f"{runs['lora']}:1", "--out", str(out), *args)
            assert str(path) in err
        finally:
            path.write_bytes(original)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary directory left either


@pytest.mark.torch
def test_a_hugging_face_tokenizer_is_copied_and_its_stop_ids_encoded(tmp_path: Path) -> None:
    source = qwen3_dir()
    files = tokenizer_files("huggingface", {"path": str(source / "tokenizer.json")})
    assert files == {
        "tokenizer.json": source / "tokenizer.json",
        "tokenizer_config.json": source / "tokenizer_config.json",
    }
    for name, path in files.items():
        (tmp_path / name).write_bytes(path.read_bytes())
    loaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    config = {
        "tokenizer": {"backend": "huggingface", "huggingface": {"path": str(source)}},
        "train": {"renderer": "qwen3"},
    }
    assert stop_token_ids(config) == [loaded.convert_tokens_to_ids("<|im_end|>")] == [151645]
    assert tokenizer_files("byte_level", {}) == {}


@pytest.mark.torch
def test_a_flipped_bit_in_full_weights_is_caught_by_the_states_checksums(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = run_checkpoint(runs["llama"], "1", what="test").record
    weights = Path(str(record.sampler_path)) / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0x01]))
        err = _refused(capsys, f"{runs['llama']}:1", "--out", str(tmp_path / "out"))
        assert f"{weights} is corrupted: weight " in err
    finally:
        weights.write_bytes(original)
    assert list(tmp_path.iterdir()) == []
