"""The reward input type and protocol."""

from __future__ import annotations

from crucible_train.core.rewards import FormatReward, Reward, RewardInput


def test_format_ok_needs_a_clean_parse_and_no_truncation() -> None:
    base = {"prompt": [], "completion_text": ""}
    assert RewardInput(**base, stop_reason="stop").format_ok  # type: ignore[arg-type]
    assert RewardInput(**base).format_ok  # type: ignore[arg-type]
    assert not RewardInput(**base, stop_reason="length").format_ok  # type: ignore[arg-type]
    assert not RewardInput(**base, parse_ok=False).format_ok  # type: ignore[arg-type]


def test_prompt_text_is_the_last_text_message_and_inputs_are_frozen_copies() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "question"}]
    sample = RewardInput(prompt=messages, completion_text="a", completion_tokens=[1, 2])
    messages[1]["content"] = "changed"
    assert sample.prompt_text == "question"
    assert sample.completion_tokens == (1, 2)
    assert RewardInput(prompt=[], completion_text="").prompt_text == ""


def test_built_ins_satisfy_the_protocol() -> None:
    assert isinstance(FormatReward(), Reward)
