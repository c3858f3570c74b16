"""The recipes of ``crucible-train train`` and their ``train.<recipe>`` blocks (container layer)."""

from __future__ import annotations

from crucible_train.recipes import RECIPES, Recipe

__all__ = ["TRAIN_KEY", "TRAIN_RECIPES", "Recipe"]

TRAIN_KEY = "train"  # the one top-level block that is not a port: `crucible-train train`

TRAIN_RECIPES: dict[str, Recipe] = RECIPES
"""Recipe name → recipe: :data:`crucible_train.recipes.RECIPES` (the same dict), in the
order the ``train`` block lists them."""
