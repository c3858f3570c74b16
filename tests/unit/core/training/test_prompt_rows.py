"""The RL dataset over prompt rows: prompts, groups, seeded passes, resume-stable batches."""

from __future__ import annotations

import pytest

from crucible_train.core.datasets import PromptRow
from crucible_train.core.renderers import get_renderer
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.envs import PromptOnlyEnv
from crucible_train.core.training.prompt_rows import PromptGroup, PromptRowDataset
from crucible_train.errors import ConfigurationError

from fakes.tokenizer import FakeTokenizer


@pytest.fixture
def renderer() -> Renderer:
    return get_renderer(
        "qwen3_instruct",
        FakeTokenizer(special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos=None),
    )


def _rows(n: int) -> list[PromptRow]:
    return [
        PromptRow(prompt=({"role": "user", "content": f"q{i}"},), answer=str(i), extras={})
        for i in range(n)
    ]


def test_a_group_shares_the_rows_generation_prompt(renderer: Renderer) -> None:
    rows = _rows(4)
    dataset = PromptRowDataset(rows=rows, renderer=renderer, groups_per_batch=2, group_size=3)
    groups = dataset.get_batch(1)
    assert [g.row for g in groups if isinstance(g, PromptGroup)] == rows[2:4]
    envs = groups[0].make_envs()
    assert len(envs) == 3
    assert all(isinstance(e, PromptOnlyEnv) for e in envs)
    prompt, stop = envs[0].initial_observation()
    assert prompt == renderer.build_generation_prompt(rows[2].prompt)
    assert list(stop) == list(renderer.get_stop_sequences())


def test_without_a_seed_passes_repeat_the_given_order(renderer: Renderer) -> None:
    rows = _rows(5)
    dataset = PromptRowDataset(
        rows=rows, renderer=renderer, groups_per_batch=2, group_size=1, num_batches=4
    )
    assert len(dataset) == 4
    seen = [r.answer for i in range(4) for r in dataset.rows_of_batch(i)]
    assert seen == ["0", "1", "2", "3", "4", "0", "1", "2"]


def test_one_pass_by_default_counts_whole_batches(renderer: Renderer) -> None:
    dataset = PromptRowDataset(rows=_rows(5), renderer=renderer, groups_per_batch=2, group_size=1)
    assert len(dataset) == 2


def test_a_seed_shuffles_each_pass_alike_on_every_call(renderer: Renderer) -> None:
    def answers(seed: int) -> list[str]:
        dataset = PromptRowDataset(
            rows=_rows(6),
            renderer=renderer,
            groups_per_batch=3,
            group_size=1,
            num_batches=4,
            shuffle_seed=seed,
        )
        return [str(r.answer) for i in range(4) for r in dataset.rows_of_batch(i)]

    first, again = answers(7), answers(7)
    assert first == again
    assert sorted(first[:6]) == sorted(first[6:]) == [str(i) for i in range(6)]
    assert first[:6] != first[6:] or answers(8)[:6] != first[:6]
    assert first != [str(i % 6) for i in range(12)]


def test_too_few_rows_for_a_batch_is_refused(renderer: Renderer) -> None:
    with pytest.raises(ConfigurationError, match="groups_per_batch 4 is larger than the 3"):
        PromptRowDataset(rows=_rows(3), renderer=renderer, groups_per_batch=4, group_size=2)
