"""EvalSample's input (a string or a list of messages), repeated samples, results round trip."""

from __future__ import annotations

import pytest

from crucible_train.core.evaluation import (
    REPEAT_KEY,
    EvalResult,
    EvalSample,
    input_messages,
    repeat_sample,
)
from crucible_train.errors import InvalidDataError

CONVERSATION = [
    {"role": "system", "content": "Answer with a number."},
    {"role": "user", "content": "2 + 2?"},
]


def test_a_text_input_is_one_user_message():
    sample = EvalSample.from_mapping({"id": 1, "input": "2 + 2?", "target": "4"})
    assert input_messages(sample) == [{"role": "user", "content": "2 + 2?"}]


def test_a_message_list_input_is_passed_through():
    sample = EvalSample.from_mapping({"id": "a", "input": CONVERSATION})
    assert sample.input == tuple(CONVERSATION)
    assert input_messages(sample) == CONVERSATION
    hash(sample)  # a conversation does not make the sample unhashable


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (5, "EvalSample.input is a int; expected a string"),
        ([], "empty list"),
        ([{"role": "user"}], "item 0 is not a message"),
        (["hi"], "item 0 is not a message"),
        ({"role": "user", "content": "x"}, "is a dict; expected a string"),
    ],
)
def test_a_malformed_input_names_what_is_wrong(value, match):
    with pytest.raises(InvalidDataError, match=match):
        EvalSample.from_mapping({"id": "a", "input": value})


def test_no_input_cannot_be_asked():
    with pytest.raises(InvalidDataError, match="neither output nor input"):
        input_messages(EvalSample(id="a", target="x"))


def test_repeat_sample_numbers_the_copies_and_keeps_the_rest():
    sample = EvalSample(id="q", input="x", target="y", metadata={"topic": "t"})
    copies = list(repeat_sample(sample, 3))
    assert [c.id for c in copies] == ["q#0", "q#1", "q#2"]
    assert [c.metadata[REPEAT_KEY] for c in copies] == [("q", 0, 3), ("q", 1, 3), ("q", 2, 3)]
    assert all(c.input == "x" and c.target == "y" and c.metadata["topic"] == "t" for c in copies)
    assert list(repeat_sample(sample, 1)) == [sample]


def test_a_result_with_a_conversation_round_trips_through_json():
    result = EvalResult(id="a", input=tuple(CONVERSATION), output="4", scores={"m": 1.0})
    assert result.to_dict()["input"] == CONVERSATION
    assert EvalResult.from_json(result.to_json()) == result
