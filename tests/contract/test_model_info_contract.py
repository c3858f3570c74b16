"""ModelInfo contract: returns what it knows and None for the rest, never guesses."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from crucible_train.ports import ModelConfig

PORT = "model_info"


def test_adapter_subclasses_and_satisfies_port(adapter, port_protocol):
    assert isinstance(adapter, port_protocol)
    assert port_protocol in type(adapter).__mro__


def test_config_is_a_model_config(working_adapter):
    config = working_adapter.get_config()
    assert isinstance(config, ModelConfig)
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "max_seq_length"):
        value = getattr(config, name)
        assert value is None or (isinstance(value, int) and value > 0), name


def test_parameter_count_is_a_count_or_unknown(working_adapter):
    count = working_adapter.count_parameters()
    assert count is None or (isinstance(count, int) and count >= 0)


def test_special_tokens_map_text_to_ids_or_are_unknown(working_adapter):
    tokens = working_adapter.get_special_tokens()
    assert tokens is None or isinstance(tokens, Mapping)
    for text, token in (tokens or {}).items():
        assert isinstance(text, str)
        assert isinstance(token, int)
        assert token >= 0


def test_calls_are_repeatable(working_adapter):
    assert working_adapter.get_config() == working_adapter.get_config()
    assert working_adapter.count_parameters() == working_adapter.count_parameters()


def test_names_are_text_or_unknown(working_adapter):
    config = working_adapter.get_config()
    for name in ("model_name", "architecture"):
        value = getattr(config, name)
        assert value is None or (isinstance(value, str) and value), name


def test_answers_are_the_same_from_any_thread(working_adapter):
    # The port promises calls are safe from any thread (a cached count must not race).
    def answers():
        return (
            working_adapter.get_config(),
            working_adapter.count_parameters(),
            working_adapter.get_special_tokens(),
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _i: answers(), range(8)))
    assert all(result == results[0] for result in results)
