"""``docs/configuration.md``: its reference tables against the settings classes.

One table per port (backend, key, default, description) plus the ``metrics`` block's own
keys and the ``train`` recipes. Every field of every backend the wiring diagram declares
must be there with its default and its description (from the settings class), and
nothing else; a backend without settings has one row saying so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from crucible_train.config import field_specs
from crucible_train.container import TRAIN_KEY, TRAIN_RECIPES, backends_of
from crucible_train.container.describe import field_descriptions, yaml_value
from crucible_train.container.settings import MetricsSettings
from crucible_train.recipes.settings import TrainSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
NO_SETTINGS = "no settings"
BLOCK = "(block)"  # the "backend" column of a block's own keys (metrics.run_dir, train.*)
PIPE = "\\|"  # a | inside a table cell
Row = tuple[str, str, str, str]


def _default(spec: Any) -> str:
    if spec.is_secret:
        return f"${{{spec.secret_env}:}}"
    if spec.required:
        return "required"
    default = spec.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    return yaml_value(list(default) if isinstance(default, tuple) else default)


def _rows(owner: str, schema: type) -> list[Row]:
    descriptions = field_descriptions(schema)
    specs = field_specs(schema)
    if not specs:
        return [(owner, "", "", NO_SETTINGS)]
    return [(owner, name, _default(spec), descriptions[name]) for name, spec in specs.items()]


def expected_tables() -> dict[str, list[Row]]:
    """Section name (a port, or ``train``) → its rows, in order."""
    tables: dict[str, list[Row]] = {}
    for port, backends in backends_of().items():
        rows = _rows(BLOCK, MetricsSettings) if port == "metrics" else []
        for name, backend in backends.items():
            rows += _rows(name, backend.settings)
        tables[port] = rows
    rows = _rows(BLOCK, TrainSettings)
    for name, recipe in TRAIN_RECIPES.items():
        rows += _rows(name, recipe.load_config_class())
    tables[TRAIN_KEY] = rows
    return tables


def _cell(text: str) -> str:
    text = text.replace(PIPE, "|").replace("&lt;", "<").replace("&gt;", ">")
    if text.startswith("`") and text.endswith("`") and len(text) > 1:
        text = text[1:-1]
    return text


def render(rows: list[Row]) -> str:
    """The Markdown table for ``rows`` (what the page holds)."""

    def code(text: str) -> str:  # inside a code span only the cell separator is escaped
        return "`" + text.replace("|", PIPE) + "`" if text else ""

    def prose(text: str) -> str:
        return text.replace("|", PIPE).replace("<", "&lt;").replace(">", "&gt;")

    lines = ["| backend | key | default | description |", "|---|---|---|---|"]
    for owner, key, default, description in rows:
        shown = [BLOCK if owner == BLOCK else code(owner), code(key), code(default)]
        lines.append(f"| {' | '.join(shown)} | {prose(description)} |")
    return "\n".join(lines)


def documented_tables(text: str) -> dict[str, list[Row]]:
    """Section name → the rows of the table under its ``### `name``` heading."""
    tables: dict[str, list[Row]] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = re.match(r"^### `([a-z_]+)`", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
        elif line.startswith("#"):
            current = None
        elif current and line.startswith("|") and not line.startswith(("|---", "| backend")):
            cells = [_cell(cell.strip()) for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 4, line
            tables[current].append((cells[0], cells[1], cells[2], cells[3]))
    return tables


def table_problems(text: str) -> list[str]:
    """How the reference tables of ``text`` differ from the settings classes."""
    documented = documented_tables(text)
    problems = [
        f"### `{name}`: not a port or train" for name in documented if name not in expected_tables()
    ]
    for name, rows in expected_tables().items():
        have = documented.get(name)
        if have is None:
            problems.append(f"### `{name}`: no table; expected:\n{render(rows)}")
            continue
        keys = {(row[0], row[1]) for row in rows}
        problems += [
            f"{name}: {row[0]}.{row[1]} is not a setting"
            for row in have
            if (row[0], row[1]) not in keys
        ]
        documented_rows = {(row[0], row[1]): row for row in have}
        for row in rows:
            found = documented_rows.get((row[0], row[1]))
            if found is None:
                problems.append(f"{name}: {row[0]}.{row[1]} is missing")
            elif found != row:
                problems.append(
                    f"{name}: {row[0]}.{row[1]} documented as {found[2:]}, expected {row[2:]}"
                )
        if not problems and have != rows:
            problems.append(f"{name}: rows out of order; expected:\n{render(rows)}")
    return problems


def test_the_reference_tables_match_the_settings_classes() -> None:
    assert table_problems(DOC.read_text("utf-8")) == []


def test_the_page_cites_nothing_outside_the_repository() -> None:
    text = DOC.read_text("utf-8")
    assert "/work/" not in text
    assert "reference/" not in text


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "| `requests` | `pool_size` | `10` |",
            "| `requests` | `pool_size` | `11` |",
            "documented as",
        ),
        ("| `requests` | `pool_size` |", "| `requests` | `pool_sizes` |", "is not a setting"),
        ("connections kept open per host |", "connections |", "documented as"),
    ],
)
def test_a_doctored_page_fails(old: str, new: str, expected: str) -> None:
    text = DOC.read_text("utf-8")
    assert old in text
    problems = table_problems(text.replace(old, new, 1))
    assert any(expected in problem for problem in problems), problems


def test_a_missing_row_fails() -> None:
    lines = DOC.read_text("utf-8").splitlines()
    kept = [line for line in lines if not line.startswith("| `requests` | `pool_size` |")]
    assert len(kept) == len(lines) - 1
    assert table_problems("\n".join(kept)) == ["http: requests.pool_size is missing"]
