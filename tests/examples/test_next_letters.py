"""examples/next_letters: the generator writes loadable rows whose held-out words are unseen."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.core.datasets import ConversationRow, PromptRow, load_rows

GENERATOR = Path(__file__).parents[2] / "examples" / "next_letters" / "make_data.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_data", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_files_hold_disjoint_words_that_the_loader_reads(tmp_path: Path) -> None:
    _generator().main([str(tmp_path), "--train", "50", "--rl", "20", "--test", "10"])
    store = FilesDatasetStore(root=str(tmp_path))
    train = load_rows(store, "train.jsonl")
    rl = load_rows(store, "rl.jsonl", "prompt")
    test = load_rows(store, "test.jsonl", "prompt")
    assert [len(train), len(rl), len(test)] == [50, 20, 10]
    assert all(isinstance(r, ConversationRow) for r in train)
    assert all(isinstance(r, PromptRow) for r in [*rl, *test])

    def word(prompt: str) -> str:
        return prompt.rsplit(" ", 1)[1]

    train_words = {word(r.messages[0]["content"]) for r in train if isinstance(r, ConversationRow)}
    rl_words = {word(r.prompt[0]["content"]) for r in rl if isinstance(r, PromptRow)}
    test_words = {word(r.prompt[0]["content"]) for r in test if isinstance(r, PromptRow)}
    assert not train_words & rl_words
    assert not (train_words | rl_words) & test_words
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["target"] for s in samples] == [r.answer for r in test if isinstance(r, PromptRow)]


def test_the_answer_shifts_each_letter_and_wraps_z() -> None:
    assert _generator().next_letters("cat") == "dbu"
    assert _generator().next_letters("zaz") == "aba"
