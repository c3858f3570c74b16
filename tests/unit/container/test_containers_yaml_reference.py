"""``containers.yaml`` against the settings classes: every backend, key, default and comment.

The file is written by hand (it is the product owner's annotated profile) but checked
here against the one place each setting is defined: its settings class beside the adapter
(recipes: the recipe's config class). Every backend of every port, as the wiring diagram
declares it, has a sub-block, active or commented out (``# key: value``), listing exactly
its settings class's fields in order, each with the class's default and, as its comment,
the class's description of the field.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from crucible_train.config import field_specs
from crucible_train.container import TRAIN_KEY, TRAIN_RECIPES, backends_of
from crucible_train.container.describe import field_descriptions
from crucible_train.container.settings import MetricsSettings
from crucible_train.container.yaml_loading import StrictLoader
from crucible_train.ports import PORTS
from crucible_train.recipes.settings import TrainSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
CONTAINERS_YAML = REPO_ROOT / "containers.yaml"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def _uncomment(text: str) -> str:
    """Commented-out settings inside a port block (``  # key: value``) made active."""
    return re.sub(r"^( {2,})# ", r"\1", text, flags=re.M)


def _split_comment(rest: str) -> tuple[str, str | None]:
    """``value # comment`` → (value, comment); a ``#`` inside quotes is not a comment."""
    quote: str | None = None
    for index, char in enumerate(rest):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or rest[index - 1] == " "):
            return rest[:index].strip(), rest[index + 1 :].strip()
    return rest.strip(), None


def _comments(text: str) -> dict[tuple[str, ...], str | None]:
    """Key path → the comment on its line, for every key line of ``text``."""
    found: dict[tuple[str, ...], str | None] = {}
    stack: list[str] = []
    for line in text.splitlines():
        match = KEY_LINE.match(line)
        if not match:
            continue
        depth = len(match.group("indent")) // 2
        stack = [*stack[:depth], match.group("key")]
        found[tuple(stack)] = _split_comment(match.group("rest"))[1]
    return found


def _default(spec_default: Any) -> Any:
    if isinstance(spec_default, attrs.Factory):  # type: ignore[arg-type]
        spec_default = spec_default.factory()
    return list(spec_default) if isinstance(spec_default, tuple) else spec_default


def _same(value: Any, default: Any) -> bool:
    # True == 1 in Python; a YAML `1` is not the default `true`.
    return isinstance(value, bool) == isinstance(default, bool) and value == default


def _check_block(
    block: Any,
    schema: type,
    path: tuple[str, ...],
    comments: Mapping[tuple[str, ...], str | None],
    reserved: tuple[str, ...] = (),
) -> list[str]:
    """Problems of one settings block: keys, order, defaults and comments."""
    where = ".".join(path)
    if block is None:
        block = {}
    if not isinstance(block, dict):
        return [f"{where}: expected a mapping of settings, got {block!r}"]
    specs = field_specs(schema)
    descriptions = field_descriptions(schema)
    given = [key for key in block if key not in reserved]
    problems = [
        f"{where}.{key}: missing (a field of {schema.__name__})"
        for key in specs
        if key not in block
    ]
    problems += [
        f"{where}.{key}: not a field of {schema.__name__}" for key in given if key not in specs
    ]
    if not problems and given != [key for key in specs if key in given]:
        problems.append(f"{where}: keys are not in {schema.__name__}'s order: {list(specs)}")
    for key, spec in specs.items():
        if key not in block:
            continue
        value = block[key]
        if spec.is_secret:
            expected = f"${{{spec.secret_env}:}}"
            if value != expected:
                problems.append(
                    f"{where}.{key}: a secret must be written {expected}, got {value!r}"
                )
        elif not spec.required and not _same(value, _default(spec.default)):
            problems.append(
                f"{where}.{key}: {value!r} is not {schema.__name__}'s default "
                f"{_default(spec.default)!r}"
            )
        comment = comments.get((*path, key))
        if comment != descriptions.get(key):
            problems.append(
                f"{where}.{key}: the comment must be the field's description "
                f"{descriptions.get(key)!r}, got {comment!r}"
            )
    return problems


def containers_yaml_problems(text: str) -> list[str]:
    """Every way ``text`` (a containers.yaml) disagrees with the diagram and settings classes."""
    active = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass: safe
    everything = _uncomment(text)
    data = yaml.load(everything, Loader=StrictLoader)
    comments = _comments(everything)
    problems: list[str] = []
    top = [*PORTS, TRAIN_KEY]
    problems += [f"{key}: not a port or {TRAIN_KEY}" for key in data if key not in top]
    for port, backends in backends_of().items():
        block = data.get(port)
        if not isinstance(block, dict):
            problems.append(f"{port}: missing port block")
            continue
        if port == "metrics":
            reserved: tuple[str, ...] = ("sinks", *field_specs(MetricsSettings))
            problems += _check_block(
                block, MetricsSettings, (port,), comments, ("sinks", *backends)
            )
        else:
            reserved = ("backend",)
        selector = reserved[0]
        if selector not in active.get(port, {}):
            problems.append(f"{port}.{selector}: missing (it must be active)")
        for key in block:
            if key not in reserved and key not in backends:
                problems.append(f"{port}.{key}: not a backend of {port}; valid: {sorted(backends)}")
        for name, backend in backends.items():
            if name not in block:
                problems.append(
                    f"{port}.{name}: no sub-block for this backend (write `{name}: {{}}`)"
                )
                continue
            problems += _check_block(block[name], backend.settings, (port, name), comments)
    train = data.get(TRAIN_KEY)
    if not isinstance(train, dict):
        return [*problems, f"{TRAIN_KEY}: missing"]
    problems += _check_block(train, TrainSettings, (TRAIN_KEY,), comments, tuple(TRAIN_RECIPES))
    for name, recipe in TRAIN_RECIPES.items():
        schema = recipe.load_config_class()
        if name not in train:
            problems.append(f"{TRAIN_KEY}.{name}: missing recipe block")
            continue
        problems += _check_block(train[name], schema, (TRAIN_KEY, name), comments)
    return problems


# --- the real file ------------------------------------------------------------------------


def test_the_packaged_file_is_the_top_level_file() -> None:
    packaged = resources.files("crucible_train").joinpath("containers.yaml")
    assert packaged.read_bytes() == CONTAINERS_YAML.read_bytes()
    packaged_path = Path(str(packaged))
    if packaged_path.is_relative_to(REPO_ROOT):  # running from the source tree
        assert packaged_path.is_symlink()
        assert packaged_path.resolve() == CONTAINERS_YAML.resolve()


def test_git_holds_one_copy_and_a_symlink() -> None:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-s", "containers.yaml", "src/crucible_train/containers.yaml"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    modes = {line.split("\t")[1]: line.split()[0] for line in listed}
    assert modes == {"containers.yaml": "100644", "src/crucible_train/containers.yaml": "120000"}


def test_containers_yaml_matches_the_settings_classes() -> None:
    assert containers_yaml_problems(CONTAINERS_YAML.read_text("utf-8")) == []


def test_every_setting_has_a_description() -> None:
    schemas = {backend.settings for port in backends_of().values() for backend in port.values()}
    schemas |= {TrainSettings, MetricsSettings}
    schemas |= {recipe.load_config_class() for recipe in TRAIN_RECIPES.values()}
    undescribed = [
        f"{schema.__name__}.{name}"
        for schema in schemas
        for name in field_specs(schema)
        if not field_descriptions(schema).get(name)
    ]
    assert undescribed == []


# --- the check itself fails on a doctored copy --------------------------------------------


def _doctored(old: str, new: str, count: int = 1) -> list[str]:
    text = CONTAINERS_YAML.read_text("utf-8")
    assert old in text, old
    return containers_yaml_problems(text.replace(old, new, count))


def _without_line(prefix: str) -> list[str]:
    text = CONTAINERS_YAML.read_text("utf-8")
    lines = text.splitlines(keepends=True)
    (index,) = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    return containers_yaml_problems("".join(lines[:index] + lines[index + 1 :]))


def test_a_missing_key_is_caught() -> None:
    problems = _without_line("    pool_size: 10")
    assert problems == ["http.requests.pool_size: missing (a field of RequestsHttpSettings)"]


def test_a_missing_key_in_a_commented_block_is_caught() -> None:
    problems = _without_line("  #   preset: null")
    assert problems == ["tokenizer.tiktoken.preset: missing (a field of TiktokenTokenizerSettings)"]


def test_an_extra_key_is_caught() -> None:
    problems = _doctored("    pool_size: 10 ", "    pool_sizes: 3 # extra\n    pool_size: 10 ")
    assert any(
        "http.requests.pool_sizes: not a field of RequestsHttpSettings" in p for p in problems
    )


def test_a_wrong_default_is_caught() -> None:
    problems = _doctored("    pool_size: 10 ", "    pool_size: 11 ")
    assert any(
        "http.requests.pool_size: 11 is not RequestsHttpSettings's default 10" in p
        for p in problems
    )


def test_a_wrong_recipe_default_is_caught() -> None:
    lines = CONTAINERS_YAML.read_text("utf-8").splitlines(keepends=True)
    start = lines.index(next(line for line in lines if line.startswith("  sft:")))
    index = start + 1  # the recipe's first setting
    key = lines[index].split(":")[0].strip()
    lines[index] = f"    {key}: 12345 # {_split_comment(lines[index].split(':', 1)[1])[1]}\n"
    problems = containers_yaml_problems("".join(lines))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{TRAIN_KEY}.sft.{key}: 12345 is not"), problems


def test_a_boolean_default_is_not_a_number() -> None:
    problems = _doctored("    offline: false", "    offline: 0")
    assert any("hub.huggingface.offline: 0 is not" in p for p in problems), problems


def test_a_missing_backend_block_is_caught() -> None:
    problems = _doctored("  # tiktoken:", "  # tiktokn:")
    assert any("tokenizer.tiktoken: no sub-block" in p for p in problems), problems
    assert any("tokenizer.tiktokn: not a backend of tokenizer" in p for p in problems), problems


def test_a_literal_secret_is_caught() -> None:
    problems = _doctored("${HF_TOKEN:}", "hf_literal")
    assert any(
        "hub.huggingface.token: a secret must be written ${HF_TOKEN:}" in p for p in problems
    )


def test_a_comment_that_is_not_the_description_is_caught() -> None:
    text = CONTAINERS_YAML.read_text("utf-8")
    line = next(line for line in text.splitlines() if line.startswith("    pool_size:"))
    problems = containers_yaml_problems(text.replace(line, "    pool_size: 10 # pool", 1))
    assert any("http.requests.pool_size: the comment must be" in p for p in problems), problems
