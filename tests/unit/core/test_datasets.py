"""core/datasets.py: every row format normalised, configurable columns, row-level errors."""

from __future__ import annotations

import pytest

from crucible_train.core.datasets import (
    ColumnNames,
    ConversationRow,
    PreferenceRow,
    PromptCompletionRow,
    PromptRow,
    detect_kind,
    iter_rows,
    load_rows,
)
from crucible_train.errors import InvalidDataError

from fakes import FakeDatasetStore

USER = {"role": "user", "content": "hi"}
BOT = {"role": "assistant", "content": "hello"}
BAD = {"role": "assistant", "content": "go away"}


def rows(data, kind=None, names=None):
    return load_rows(FakeDatasetStore({"d": data}), "d", kind, names or ColumnNames())


def test_conversation_row_keeps_messages_and_tools():
    tools = [{"name": "calc"}]
    (row,) = rows([{"messages": [USER, BOT], "tools": tools}])
    assert row == ConversationRow(messages=(USER, BOT), tools=({"name": "calc"},))
    assert row.conversation() == {"messages": [USER, BOT], "tools": tools}


@pytest.mark.parametrize(
    ("prompt", "completion"), [("hi", "hello"), ([USER], [BOT]), ("hi", [BOT]), ([USER], "hello")]
)
def test_prompt_completion_accepts_strings_and_message_lists(prompt, completion):
    (row,) = rows([{"prompt": prompt, "completion": completion}])
    assert row == PromptCompletionRow(prompt=(USER,), completion=(BOT,))


def test_prompt_completion_trains_on_the_completion_only():
    (row,) = rows([{"prompt": "hi", "completion": "hello"}])
    assert isinstance(row, PromptCompletionRow)
    assert row.conversation()["messages"] == [
        {**USER, "trainable": False},
        {**BOT, "trainable": True},
    ]


def test_prompt_row_keeps_every_other_column_for_the_reward():
    (row,) = rows([{"prompt": "hi", "answer": "4", "level": 2}], kind="prompt")
    assert row == PromptRow(prompt=(USER,), answer="4", extras={"answer": "4", "level": 2})


def test_configured_column_names():
    names = ColumnNames(prompt_key="question", answer_key="solution")
    (row,) = rows([{"question": "hi", "solution": "4"}], kind="prompt", names=names)
    assert isinstance(row, PromptRow)
    assert row.answer == "4"
    assert row.prompt == (USER,)


def test_missing_column_names_the_row_and_the_columns_it_has():
    with pytest.raises(InvalidDataError) as info:
        rows([{"prompt": "a", "answer": "1"}, {"question": "b", "answer": "2"}], kind="prompt")
    assert str(info.value).startswith("d:2: a prompt row needs column(s) 'prompt'; the row has ")
    assert "'question', 'answer'" in str(info.value)


def test_missing_answer_is_an_error_unless_not_configured():
    with pytest.raises(InvalidDataError, match="needs column\\(s\\) 'answer'"):
        rows([{"prompt": "a"}], kind="prompt")
    (row,) = rows([{"prompt": "a"}], kind="prompt", names=ColumnNames(answer_key=None))
    assert isinstance(row, PromptRow)
    assert row.answer is None


@pytest.mark.parametrize("spelling", ["prompt", "messages"])
def test_preference_with_an_explicit_prompt(spelling):
    prompt = "hi" if spelling == "prompt" else [USER]
    (row,) = rows([{spelling: prompt, "chosen": "hello", "rejected": "go away"}])
    assert row == PreferenceRow(prompt=(USER,), chosen=(BOT,), rejected=(BAD,))


def test_preference_with_an_implicit_prompt_is_the_common_prefix():
    (row,) = rows([{"chosen": [USER, BOT], "rejected": [USER, BAD]}])
    assert row == PreferenceRow(prompt=(USER,), chosen=(BOT,), rejected=(BAD,))


def test_implicit_prompt_needs_a_shared_prefix():
    with pytest.raises(InvalidDataError, match="start with the same prompt"):
        rows([{"chosen": "hello", "rejected": "go away"}])


def test_completion_must_end_with_the_assistant():
    with pytest.raises(InvalidDataError, match="d:1: the last message of 'completion'"):
        rows([{"prompt": "hi", "completion": [USER]}])


def test_malformed_message_names_column_and_item():
    with pytest.raises(InvalidDataError, match="d:1: column 'messages' item 1 must be"):
        rows([{"messages": [USER, {"role": "assistant"}]}])


def test_null_struct_fields_are_dropped_from_messages():
    # Parquet / HF datasets fill a key one message has with null in the others.
    (row,) = rows([{"messages": [{**USER, "name": None}, BOT]}])
    assert isinstance(row, ConversationRow)
    assert row.messages == (USER, BOT)


def test_kind_is_detected_from_the_first_row_and_holds_for_the_rest():
    assert detect_kind({"prompt": "a", "answer": 1}) == "prompt"
    assert detect_kind({"other": 1}) is None
    with pytest.raises(InvalidDataError, match="d:2: a prompt-completion row needs"):
        rows([{"prompt": "a", "completion": "b"}, {"prompt": "a"}])


def test_undetectable_row_lists_the_expected_columns():
    with pytest.raises(InvalidDataError, match="d:1: cannot tell the row format"):
        rows([{"text": "x"}])


def test_empty_dataset_is_an_error():
    with pytest.raises(InvalidDataError, match="d: the dataset holds no rows"):
        rows([])


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(InvalidDataError, match="valid kinds: conversation, prompt_completion"):
        rows([{"prompt": "a"}], kind="bogus")  # type: ignore[arg-type]


def test_iter_rows_streams_rows_before_a_bad_one():
    store = FakeDatasetStore({"d": [{"prompt": "a", "answer": "1"}, {"answer": "2"}]})
    stream = iter_rows(store, "d", "prompt")
    assert next(stream).prompt == ({"role": "user", "content": "a"},)  # type: ignore[union-attr]
    with pytest.raises(InvalidDataError, match="d:2: a prompt row needs column"):
        next(stream)


def test_a_tuple_of_kinds_detects_and_refuses_the_others_naming_the_options():
    sft = ("conversation", "prompt_completion")
    (row,) = rows([{"prompt": "hi", "completion": "hello"}], kind=sft)
    assert isinstance(row, PromptCompletionRow)
    (row,) = rows([{"messages": [USER, BOT]}], kind=sft)
    assert isinstance(row, ConversationRow)
    with pytest.raises(InvalidDataError) as info:
        rows([{"prompt": "hi", "answer": "x"}], kind=sft)
    assert str(info.value) == (
        "d:1: expected conversation rows ('messages') or prompt-completion rows ('prompt' + "
        "'completion'), got a prompt-only row (columns 'prompt', 'answer') (set messages_key, "
        "prompt_key, completion_key if the dataset spells them differently)"
    )
    with pytest.raises(InvalidDataError, match=r"d:1: cannot tell the row format .* \('q'\)"):
        rows([{"q": "x"}], kind=("preference",))
    # Later rows are held to the first row's kind.
    with pytest.raises(InvalidDataError, match="d:2: a conversation row needs column"):
        rows([{"messages": [USER, BOT]}, {"prompt": "hi", "completion": "hello"}], kind=sft)
    with pytest.raises(InvalidDataError, match="unknown row kind"):
        rows([{"prompt": "a"}], kind=("prompt", "bogus"))  # type: ignore[arg-type]


def test_missing_columns_name_the_option_to_set():
    names = ColumnNames(prompt_key="question", answer_key="solution")
    with pytest.raises(InvalidDataError) as info:
        rows([{"question": "q", "answer": "a"}], kind="prompt", names=names)
    assert str(info.value).endswith(
        "the row has 'question', 'answer' (set the column names if the dataset spells them "
        "differently: answer_key)"
    )


def test_an_assistant_turn_that_only_calls_tools_needs_no_content():
    call = {"role": "assistant", "content": None, "tool_calls": [{"name": "f"}]}
    (row,) = rows([{"messages": [USER, call]}])
    # null content is dropped like every other null key (as the renderers take it).
    assert row.messages == (USER, {"role": "assistant", "tool_calls": [{"name": "f"}]})
    for bad in ({"role": "assistant", "content": None}, {"role": "user", "tool_calls": []}):
        with pytest.raises(InvalidDataError, match="item 1 must be"):
            rows([{"messages": [USER, bad]}])
