"""The ``train:`` block's own settings, and the key order of the recipe sub-blocks.

The recipe sub-blocks (``train.sft``, ``train.rl``, ...) are the recipes' config classes
(:data:`crucible_train.recipes.RECIPES`); the container validates each against its class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from crucible_train.config import not_blank, path_field

__all__ = ["FieldTransformer", "TrainSettings", "key_order"]

FieldTransformer = Callable[[type, list["attrs.Attribute[Any]"]], list["attrs.Attribute[Any]"]]
"""An attrs ``field_transformer``."""


@attrs.frozen(kw_only=True)
class TrainSettings:
    """``train``: the settings of ``crucible-train train`` shared by every recipe.

    Args:
        renderer: chat renderer over the configured tokenizer (``qwen3_instruct``, ...).
        runs_root: directory holding one run directory per ``train`` invocation.
    """

    renderer: str = attrs.field(default="qwen3_instruct", validator=not_blank)
    runs_root: str = path_field(default="runs", validator=not_blank)


def key_order(*names: str) -> FieldTransformer:
    """attrs ``field_transformer`` putting a recipe config's fields, inherited loop fields
    included, in the order of its ``train.<recipe>`` YAML keys (``names``).

    A recipe config subclasses its loop's config, so attrs would list the loop's fields
    first; the keys keep the order they had when one class held them all (``config show``,
    the packaged ``containers.yaml``).

    Raises:
        TypeError: when the class is created, if ``names`` are not exactly its fields.
    """

    def order(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
        by_name = {field.name: field for field in fields}
        if len(set(names)) != len(names) or set(names) != set(by_name):
            raise TypeError(
                f"{cls.__qualname__}: key_order{names} must name each of its fields "
                f"{sorted(by_name)} once"
            )
        return [by_name[name] for name in names]

    return order
