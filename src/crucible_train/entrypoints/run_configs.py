"""Reading run configurations: the backend a port selects, the checkpoint path it loads,
and what ``--resume`` and a starting checkpoint must agree on.

:func:`config_differences` lists the dotted keys in which a run's ``config.json`` and the
current configuration differ; :func:`format_mismatches` narrows that to the chat format
(renderer and tokenizer) that a starting checkpoint or a teacher must share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crucible_train.container import TRAIN_KEY, TRAIN_RECIPES
from crucible_train.core.config_dump import dump_config
from crucible_train.core.training.checkpoints import CheckpointRecord
from crucible_train.errors import ConfigurationError

__all__ = [
    "DESCRIPTIVE_PORTS",
    "LOCAL_TORCH",
    "RUN_DIR_KEYS",
    "backend_of",
    "check_run_format",
    "config_differences",
    "format_mismatches",
    "start_path",
]

LOCAL_TORCH = "local_torch"
MODEL_INFO = "model_info"
# Keys that name the run directory itself: they differ between runs by design.
RUN_DIR_KEYS = frozenset({"metrics.run_dir", "training.local_torch.checkpoint_dir"})
DESCRIPTIVE_PORTS = frozenset({MODEL_INFO})
"""Ports that describe the run without shaping it: ``--resume`` does not compare them."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def _normalised(config: Mapping[str, Any]) -> Any:
    """The JSON round trip ``config.json`` went through (tuples → lists, ...)."""
    return json.loads(json.dumps(dump_config(config), sort_keys=True))


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, recipe: str
) -> list[str]:
    """Dotted keys whose values differ between a run's ``config.json`` and ``current``.

    Keys naming the run directory (:data:`RUN_DIR_KEYS`), the blocks of
    :data:`DESCRIPTIVE_PORTS` and the ``train`` blocks of other recipes are ignored. Each
    entry reads ``key: saved -> current``.
    """
    others = {f"{TRAIN_KEY}.{name}" for name in TRAIN_RECIPES if name != recipe}
    ignored = others | DESCRIPTIVE_PORTS

    def relevant(key: str) -> bool:
        return key not in RUN_DIR_KEYS and not any(
            key == other or key.startswith(other + ".") for other in ignored
        )

    old = {k: v for k, v in _flatten(_normalised(saved)).items() if relevant(k)}
    new = {k: v for k, v in _flatten(_normalised(current)).items() if relevant(k)}
    missing = object()
    out = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            shown_before = "(absent)" if before is missing else json.dumps(before)
            shown_after = "(absent)" if after is missing else json.dumps(after)
            out.append(f"{key}: {shown_before} -> {shown_after}")
    return out


def _format_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The renderer and the selected tokenizer with its settings."""
    tokenizer = config.get("tokenizer")
    train = config.get(TRAIN_KEY)
    renderer = train.get("renderer") if isinstance(train, Mapping) else None
    if not isinstance(tokenizer, Mapping):
        return {"renderer": renderer, "tokenizer": None}
    backend = tokenizer.get("backend")
    return {
        "renderer": renderer,
        "tokenizer": {"backend": backend, str(backend): tokenizer.get(str(backend))},
    }


def format_mismatches(sft_config: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Where a run's chat format (renderer, tokenizer) differs from ``current``'s."""
    return config_differences(_format_of(sft_config), _format_of(current), recipe="")


def backend_of(data: Mapping[str, Any], port: str) -> str:
    """The backend selected for ``port`` in the configuration tree ``data``."""
    section = data.get(port)
    backend = section.get("backend") if isinstance(section, Mapping) else None
    return backend if isinstance(backend, str) else LOCAL_TORCH


def start_path(record: CheckpointRecord, data: Mapping[str, Any], port: str) -> str | None:
    """Which saved path of an SFT checkpoint ``port``'s backend starts from.

    The local engine loads weights from the sampler directory (a Hugging Face model
    directory) for training and sampling alike; a Tinker training client starts from the
    saved state (``tinker://.../weights/NAME``) and a Tinker sampler from sampler weights.
    """
    if port == "training" and backend_of(data, port) != LOCAL_TORCH:
        return record.state_path
    return record.sampler_path


def check_run_format(
    run_dir: Path, run_config: Mapping[str, Any], current: Mapping[str, Any], *, who: str
) -> None:
    """Refuse a run to start from (or to distil from) in another chat format.

    Raises:
        ConfigurationError: the renderer or tokenizer settings differ (each key named).
    """
    mismatches = format_mismatches(run_config, current)
    if mismatches:
        raise ConfigurationError(
            f"{who} must use the same chat format (renderer and tokenizer), but "
            f"{run_dir} differs: " + "; ".join(mismatches) + " (set this run's keys to "
            "those values, or choose a run trained with this chat format)"
        )
