"""The ```python examples in docs/ports.md, docs/rewards.md and docs/training-recipes.md run
as written, so they cannot rot.

Each block runs on its own (a fresh namespace, a fresh temporary working directory), the way
a reader would paste it; an exception, a failed ``assert`` or a warning fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

PORTS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "ports.md"

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


@attrs.frozen(kw_only=True)
class Example:
    """One fenced ```python block: its text and the page line its code starts on."""

    line: int
    source: str


def python_examples(text: str) -> list[Example]:
    """Every ```python block of a Markdown text, in page order."""
    return [
        Example(line=text.count("\n", 0, match.start(1)) + 1, source=match.group(1))
        for match in _FENCE.finditer(text)
    ]


def run_example(example: Example, page: Path) -> None:
    """Execute one example in a namespace of its own; whatever it raises propagates."""
    # Blank lines in front keep the line numbers of a traceback equal to the page's.
    code = compile("\n" * (example.line - 1) + example.source, str(page), "exec")
    exec(code, {"__name__": "__docs_example__"})


EXAMPLES = python_examples(PORTS_PAGE.read_text(encoding="utf-8"))


def test_the_page_has_an_example_per_library_only_port():
    sources = "\n".join(example.source for example in EXAMPLES)
    for port in ("blob_store()", "vector_store()", "hub()"):
        assert port in sources, f"docs/ports.md has no runnable example calling container.{port}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line-{e.line}" for e in EXAMPLES])
def test_example_runs(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_example(example, PORTS_PAGE)


REWARDS_PAGE = PORTS_PAGE.with_name("rewards.md")
REWARD_EXAMPLES = python_examples(REWARDS_PAGE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "example", REWARD_EXAMPLES, ids=[f"rewards-line-{e.line}" for e in REWARD_EXAMPLES]
)
def test_rewards_example_runs(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_example(example, REWARDS_PAGE)


RECIPES_PAGE = PORTS_PAGE.with_name("training-recipes.md")
RECIPE_EXAMPLES = python_examples(RECIPES_PAGE.read_text(encoding="utf-8"))


def test_the_recipes_page_has_the_multi_turn_example():
    assert any("initial_observation" in example.source for example in RECIPE_EXAMPLES)


@pytest.mark.parametrize(
    "example", RECIPE_EXAMPLES, ids=[f"recipes-line-{e.line}" for e in RECIPE_EXAMPLES]
)
def test_recipes_example_runs(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_example(example, RECIPES_PAGE)


def test_examples_are_found_with_their_line_numbers():
    text = "intro\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\ny = 2\nz = 3\n```\n"
    assert python_examples(text) == [
        Example(line=4, source="x = 1\n"),
        Example(line=11, source="y = 2\nz = 3\n"),
    ]


def test_a_raising_example_fails(tmp_path):
    broken = Example(line=3, source="value = 1\nraise RuntimeError('the docs are wrong')\n")
    with pytest.raises(RuntimeError, match="the docs are wrong") as caught:
        run_example(broken, tmp_path / "page.md")
    assert caught.traceback[-1].lineno + 1 == 4  # the page line of the raise


def test_a_failed_assertion_fails(tmp_path):
    with pytest.raises(AssertionError):
        run_example(Example(line=1, source="assert 1 == 2\n"), tmp_path / "page.md")
