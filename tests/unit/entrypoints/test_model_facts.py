"""Model facts from the model_info port: what is shown, what is left out, typed errors."""

from __future__ import annotations

from crucible_train.adapters.noop.model_info import NoopModelInfo
from crucible_train.entrypoints.model_facts import ModelFacts, ask_model_info
from crucible_train.errors import AdapterUnavailableError, ModelInfoError
from crucible_train.ports.model_info import ModelConfig, ModelInfo

from fakes import FakeModelInfo


def test_known_facts_become_a_description_and_a_count() -> None:
    port = FakeModelInfo(
        config=ModelConfig(architecture="llama", num_layers=2, vocab_size=1000),
        parameters=1234567,
    )
    facts = ask_model_info(lambda: port)
    assert facts.description() == "llama, 2 layers, vocab 1000"
    assert facts.rows() == [("model", "llama, 2 layers, vocab 1000"), ("parameters", "1,234,567")]
    assert facts.line() == "llama, 2 layers, vocab 1000; 1,234,567 parameters"


def test_a_backend_that_knows_nothing_adds_no_summary_rows() -> None:
    facts = ask_model_info(NoopModelInfo)
    assert facts == ModelFacts()
    assert facts.rows() == []
    assert facts.line() == "unknown (the backend knows no model)"


def test_a_service_model_name_without_sizes() -> None:
    facts = ask_model_info(
        lambda: FakeModelInfo(config=ModelConfig(model_name="Qwen/Qwen3-8B", architecture="qwen3"))
    )
    assert facts.rows() == [("model", "Qwen/Qwen3-8B, qwen3")]


def test_typed_errors_while_building_or_asking_become_the_problem() -> None:
    def unavailable() -> ModelInfo:
        raise AdapterUnavailableError("model_info: torch is not installed\nsecond line")

    facts = ask_model_info(unavailable)
    assert facts.problem == "AdapterUnavailableError: model_info: torch is not installed"
    assert facts.rows() == [("model", f"unknown ({facts.problem})")]
    broken = ask_model_info(lambda: FakeModelInfo(error=ModelInfoError("no config.json")))
    assert broken.line() == "unknown (ModelInfoError: no config.json)"
