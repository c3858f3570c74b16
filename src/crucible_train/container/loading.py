"""Loading the configuration and building the container: the two public entry points.

Container layer. :func:`load_config` layers the packaged ``containers.yaml``, an optional
user file and dotted ``key=value`` overrides, interpolates ``${NAME}`` /
``${NAME:default}`` inside single string values, and validates the whole result against
the backends of the wiring diagram, reporting every problem in one
:class:`~crucible_train.errors.ConfigurationError`. :func:`build_container` then wires
:class:`~crucible_train.container.wiring.AppContainer`; validation always happens before
any provider is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from crucible_train.container.describe import describe_keys
from crucible_train.container.resolved import ResolvedConfig
from crucible_train.container.train_recipes import TRAIN_RECIPES
from crucible_train.container.validation import Validator
from crucible_train.container.wiring import AppContainer, backends_of, container_from_config
from crucible_train.container.yaml_loading import (
    apply_override,
    interpolate,
    load_layer,
    merge,
    packaged_source,
    read_user_file,
)

__all__ = ["build_container", "load_config"]


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> ResolvedConfig:
    """Load, layer, interpolate and validate the configuration.

    Layers, each merged recursively over the previous one: the packaged
    ``containers.yaml``; ``config_file`` when given; then each ``key=value`` override
    (the value is read as YAML: ``[a, b]``, ``3``, ``true``). ``${NAME}`` and
    ``${NAME:default}`` are then replaced inside single string values only.

    Args:
        config_file: a YAML file merged over the packaged default; relative to
            ``base_dir``. Giving a file that does not exist is an error.
        overrides: dotted ``key=value`` strings, e.g. ``"training.backend=noop"``.
        environ: environment variables for interpolation and secrets (default:
            ``os.environ``).
        base_dir: directory relative paths are resolved against (default: the current
            working directory, i.e. where the command was started).

    Returns:
        The validated configuration.

    Raises:
        MissingSecretError: the only problems are secrets whose variables are unset.
        ConfigurationError: anything else; every problem is listed, one per line.
    """
    env = os.environ if environ is None else environ
    base = Path(os.path.abspath(Path.cwd() if base_dir is None else base_dir))
    packaged_name, packaged_text = packaged_source()
    tree = load_layer(packaged_text, packaged_name)
    sources = [packaged_name]
    if config_file is not None:
        user_name, user_text = read_user_file(config_file, base)
        tree = merge(tree, load_layer(user_text, user_name))
        sources.append(user_name)
    backends = backends_of(AppContainer)
    recipes = {name: recipe.load_config_class() for name, recipe in TRAIN_RECIPES.items()}
    validator = Validator(backends=backends, recipes=recipes, environ=env, base_dir=base)
    override_keys: list[str] = []
    for override in overrides:
        problem = apply_override(tree, override)
        if problem is None:
            override_keys.append(override.partition("=")[0].strip())
        else:
            validator.report.add(problem)  # keep going: report everything at once
    if override_keys:
        sources.append(f"overrides: {', '.join(override_keys)}")
    resolved = validator.tree(interpolate(tree, env))
    validator.report.raise_if_any()
    descriptions, blocks = describe_keys(resolved, backends, recipes)
    return ResolvedConfig(
        sources=tuple(sources),
        secret_keys=frozenset(validator.secret_keys),
        data=resolved,
        descriptions=descriptions,
        blocks=blocks,
    )


def build_container(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path | None = None,
) -> AppContainer:
    """Load and validate the configuration, then wire the container.

    Args:
        config_file: optional YAML file merged over the packaged default.
        overrides: dotted ``key=value`` overrides applied last.
        environ: environment for interpolation and secrets (default ``os.environ``).
        base_dir: directory relative paths resolve against (default: current directory).

    Returns:
        The container; call ``shutdown_resources()`` when done with it.

    Raises:
        MissingSecretError: only secrets are missing.
        ConfigurationError: the configuration is invalid (every problem listed).
    """
    return container_from_config(load_config(config_file, overrides, environ, base_dir))
