"""Build rewards from specs: ``build_reward(spec)`` and ``build_rewards(specs)``.

Core layer. A spec is a name (``"exact_match"``, ``"format"``, or a Python path
``"package.module:function"``) or a mapping ``{name, weight, ...options}``:

* every scorer registered in :mod:`crucible_train.core.scoring` (``exact_match``,
  ``normalized_exact_match``, ``numeric_match``, ``contains``, ``regex``, ``token_f1``,
  ``semantic_similarity`` ...), with reward options ``column`` (default ``answer``),
  ``strip``, ``require_format_ok`` and the scorer's own options;
* ``format`` (options ``require_stop``, ``offset``), ``length`` (``free_tokens``,
  ``per_token``), ``judge`` (``rubric``, ``template``, ``max_score``,
  ``reference_column``, ``temperature``, ``max_tokens``) and ``python`` (``function``).

Every spec may carry ``weight`` (default 1.0) and ``label`` (the metric name; default the
reward's name; two components may not share one). Everything is checked here, once: an
unknown name or option (valid ones listed), an option the scorer refuses, a Python path
that does not import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from crucible_train.core import scoring
from crucible_train.core.rewards.builtins import (
    FormatReward,
    LengthPenalty,
    PythonReward,
    ScorerReward,
)
from crucible_train.core.rewards.combine import CombinedReward, WeightedReward
from crucible_train.core.rewards.contract import Reward
from crucible_train.core.rewards.judge import JudgeReward
from crucible_train.errors import ConfigurationError
from crucible_train.ports.embedding import EmbeddingClient
from crucible_train.ports.llm import LLMClient, LLMParams

__all__ = ["BUILTIN_REWARDS", "RewardSpec", "build_reward", "build_rewards", "list_rewards"]

RewardSpec = str | Mapping[str, Any]
"""A reward name, a ``package.module:function`` path, or ``{name, weight, ...options}``."""

_COMMON: Final = ("name", "weight", "label")
_SCORER_OPTS: Final = ("column", "strip", "require_format_ok")
_REWARD_LEVEL: Final = frozenset({*_COMMON, *_SCORER_OPTS})
_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "format": ("require_stop", "offset"),
    "length": ("free_tokens", "per_token"),
    "judge": ("rubric", "template", "max_score", "reference_column", "temperature", "max_tokens"),
    "python": ("function",),
}
BUILTIN_REWARDS: Final[tuple[str, ...]] = tuple(_OPTIONS)
"""Rewards that are not scorers; every registered scorer is a reward too."""


def list_rewards() -> list[str]:
    """Every valid reward name: the non-scorer built-ins and the registered scorers."""
    return sorted({*BUILTIN_REWARDS, *scoring.list_scorers()})


def _unknown_options(name: str, options: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"reward {name!r} got unknown option(s) {', '.join(unknown)}; it accepts: "
            f"{', '.join(sorted({*_COMMON, *allowed}))}"
        )


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(
            f"reward {name!r} option {key} must be a finite number, got {value!r}"
        )
    return float(value)


def _bool(name: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"reward {name!r} option {key} must be true or false, got {value!r}"
        )
    return value


def _scorer_reward(
    name: str, label: str, options: dict[str, Any], embedding: EmbeddingClient | None
) -> ScorerReward:
    reward_opts = {k: options.pop(k) for k in _SCORER_OPTS if k in options}
    if name == "semantic_similarity" and "embedding" not in options and embedding is not None:
        options["embedding"] = embedding
    column = reward_opts.get("column", "answer")
    if not isinstance(column, str) or not column:
        raise ConfigurationError(f"reward {name!r} option column must be a column name")
    reward = ScorerReward(
        name=label,
        scorer=name,
        column=column,
        strip=_bool(name, "strip", reward_opts.get("strip", False)),
        require_format_ok=_bool(
            name, "require_format_ok", reward_opts.get("require_format_ok", False)
        ),
        options=options,
    )
    # The scorer validates its own options (one definition of them): try it once on a
    # blank output, so a misspelt option fails at build time instead of on every row.
    try:
        scoring.score(name, "", "0", **options)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"reward {name!r}: {exc}; reward options: {', '.join(sorted(_REWARD_LEVEL))}"
        ) from exc
    except Exception:  # other probe failures say nothing about the options
        pass
    return reward


def _judge_reward(
    name: str, label: str, options: dict[str, Any], llm: LLMClient | None
) -> JudgeReward:
    if llm is None:
        raise ConfigurationError(
            f"reward {name!r} needs an LLM client: pass llm=<LLMClient> to build_reward"
        )
    temperature = _number(name, "temperature", options.pop("temperature", 0.0))
    max_tokens = options.pop("max_tokens", 512)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigurationError(f"reward {name!r} option max_tokens must be an integer >= 1")
    return JudgeReward(
        name=label,
        judge=llm,
        params=LLMParams(temperature=temperature, max_tokens=max_tokens),
        **options,
    )


def build_reward(
    spec: RewardSpec, *, llm: LLMClient | None = None, embedding: EmbeddingClient | None = None
) -> WeightedReward:
    """Build one weighted component from ``spec`` (see the module docstring).

    Args:
        spec: a name, a ``package.module:function`` path, or a mapping.
        llm: the judge client (needed by ``judge``).
        embedding: the embedding client (used by ``semantic_similarity``).

    Raises:
        ConfigurationError: unknown name or option (valid ones listed), a bad option
            value, a Python reward that does not import or is not callable.
    """
    if isinstance(spec, str):
        spec = {"name": "python", "function": spec} if ":" in spec else {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"a reward spec is a name or a mapping {{name, weight, ...options}}, got "
            f"{type(spec).__name__}"
        )
    options = dict(spec)
    name = options.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"a reward spec needs a name; valid names: {', '.join(list_rewards())}"
        )
    weight = _number(name, "weight", options.pop("weight", 1.0))
    label = options.pop("label", None)
    if label is None:
        label = name if name != "python" else str(options.get("function", name)).rpartition(":")[2]
    if not isinstance(label, str) or not label:
        raise ConfigurationError(f"reward {name!r} option label must be a non-empty string")
    reward: Reward
    if name in _OPTIONS:
        _unknown_options(name, options, _OPTIONS[name])
        if name == "format":
            reward = FormatReward(
                name=label,
                require_stop=_bool(name, "require_stop", options.get("require_stop", True)),
                offset=_number(name, "offset", options.get("offset", 0.0)),
            )
        elif name == "length":
            reward = LengthPenalty(
                name=label,
                free_tokens=options.get("free_tokens", 0),
                per_token=_number(name, "per_token", options.get("per_token", 0.001)),
            )
        elif name == "judge":
            reward = _judge_reward(name, label, options, llm)
        else:
            function = options.get("function")
            if not isinstance(function, str):
                raise ConfigurationError(
                    "reward 'python' needs the option function=package.module:function"
                )
            reward = PythonReward(name=label, function=function)
    elif name in scoring.list_scorers():
        reward = _scorer_reward(name, label, options, embedding)
    else:
        raise ConfigurationError(
            f"unknown reward {name!r}; valid names: {', '.join(list_rewards())}, or a "
            "Python function written package.module:function"
        )
    return WeightedReward(reward=reward, weight=weight)


def build_rewards(
    specs: RewardSpec | Sequence[RewardSpec],
    *,
    max_failure_rate: float = 0.1,
    llm: LLMClient | None = None,
    embedding: EmbeddingClient | None = None,
) -> CombinedReward:
    """Build the weighted sum of ``specs`` (one spec or a list).

    Raises:
        ConfigurationError: any spec is invalid, none is given, or two share a label.
    """
    listed = [specs] if isinstance(specs, str | Mapping) else list(specs)
    components = [build_reward(s, llm=llm, embedding=embedding) for s in listed]
    return CombinedReward(components=tuple(components), max_failure_rate=max_failure_rate)
