"""The built-in losses of the local PyTorch engine, with Tinker's exact formulas.

Adapter layer (``torch``, imported inside the functions). Every loss is computed per token
and reduced by a plain SUM over tokens and datums: no normalisation by length or batch
size, as the Tinker service does (``reference/tinker_cookbook.md`` §5.1). Notation, per
token ``t``: ``log p`` = the learner's log-probability of ``target_tokens[t]`` (with
gradient), ``log q`` = the sampler's (the ``logprobs`` input), ``A`` = ``advantages``,
``w`` = ``weights``, ``r = exp(log p - log q)``, ``sg`` = stop-gradient.

==========================  ===========================================================
``cross_entropy``           ``-w * log p``
``importance_sampling``     ``-r * A``
``ppo``                     ``-min(r * A, clip(r, lo, hi) * A)``
``cispo``                   ``-sg(clip(r, lo, hi)) * log p * A``
``dro``                     ``-(log p * A - beta/2 * (log p - log q)^2)``
==========================  ===========================================================

``lo``/``hi`` are ``loss_fn_config`` keys ``clip_low_threshold`` / ``clip_high_threshold``
(default 0.8 / 1.2); ``beta`` is the ``dro`` key ``beta`` (default 0.05, the value Tinker's
documentation uses; Tinker publishes no default). ``cross_entropy`` also accepts
``target_tokens`` and ``weights`` of shape ``(T, K)`` (K targets per position).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from crucible_train.errors import ConfigurationError
from crucible_train.types import LOSS_FN_NAMES

if TYPE_CHECKING:
    import torch

__all__ = [
    "LOSS_CONFIG_DEFAULTS",
    "LOSS_INPUTS",
    "check_loss_name",
    "elementwise_loss",
    "loss_metrics",
    "resolve_loss_config",
]

_POLICY_INPUTS: Final = ("target_tokens", "logprobs", "advantages")
_CLIP_DEFAULTS: Final = {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2}

LOSS_INPUTS: Final[Mapping[str, tuple[str, ...]]] = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": _POLICY_INPUTS,
    "ppo": _POLICY_INPUTS,
    "cispo": _POLICY_INPUTS,
    "dro": _POLICY_INPUTS,
}
"""Loss name → the ``loss_fn_inputs`` keys it needs (and accepts: no others)."""

LOSS_CONFIG_DEFAULTS: Final[Mapping[str, Mapping[str, float]]] = {
    "cross_entropy": {},
    "importance_sampling": {},
    "ppo": _CLIP_DEFAULTS,
    "cispo": _CLIP_DEFAULTS,
    "dro": {"beta": 0.05},
}
"""Loss name → its ``loss_fn_config`` keys and their defaults."""


def check_loss_name(name: object) -> str:
    """Return ``name`` when it is a built-in loss.

    Raises:
        ConfigurationError: anything else; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in LOSS_INPUTS:
        raise ConfigurationError(
            f"unknown loss_fn {name!r}; valid: {', '.join(LOSS_FN_NAMES)} "
            "(or use forward_backward_custom for your own loss)"
        )
    return name


def resolve_loss_config(name: str, config: Mapping[str, float] | None) -> dict[str, float]:
    """The loss's options: the defaults overlaid with ``config``, validated.

    Raises:
        ConfigurationError: an unknown key (listing the valid ones), a value that is not a
            finite number, clip thresholds outside ``0 <= lo <= hi``, a negative ``beta``.
    """
    defaults = LOSS_CONFIG_DEFAULTS[check_loss_name(name)]
    resolved = dict(defaults)
    for key, value in (config or {}).items():
        if key not in defaults:
            valid = ", ".join(defaults) or "none"
            raise ConfigurationError(
                f"loss_fn_config key {key!r} is not an option of {name}; valid: {valid}"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigurationError(
                f"loss_fn_config[{key!r}] is {value!r}; expected a finite number"
            )
        resolved[key] = float(value)
    if "clip_low_threshold" in resolved:
        low, high = resolved["clip_low_threshold"], resolved["clip_high_threshold"]
        if not 0.0 <= low <= high:
            raise ConfigurationError(
                f"{name}: clip thresholds must satisfy 0 <= clip_low_threshold <= "
                f"clip_high_threshold, got {low} and {high}"
            )
    if resolved.get("beta", 0.0) < 0:
        raise ConfigurationError(f"{name}: beta must be >= 0, got {resolved['beta']}")
    return resolved


def _ratio(logp: torch.Tensor, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    import torch

    return torch.exp(logp - inputs["logprobs"])


def elementwise_loss(
    name: str,
    logp: torch.Tensor,
    inputs: Mapping[str, torch.Tensor],
    config: Mapping[str, float],
) -> torch.Tensor:
    """The per-token loss of built-in loss ``name``; its SUM is the loss to minimise.

    Args:
        name: a built-in loss (see the module table for the formulas).
        logp: the learner's log-probabilities of the targets, float32, with gradient;
            shape ``(N,)`` (or ``(N, K)`` for ``cross_entropy``).
        inputs: the float32 loss inputs other than ``target_tokens``, each shaped like
            ``logp`` (``weights``; or ``logprobs`` and ``advantages``).
        config: the resolved options (:func:`resolve_loss_config`).

    Returns:
        A tensor shaped like ``logp``.
    """
    import torch

    check_loss_name(name)
    if name == "cross_entropy":
        return -inputs["weights"] * logp
    advantages = inputs["advantages"]
    if name == "importance_sampling":
        return -_ratio(logp, inputs) * advantages
    if name in ("ppo", "cispo"):
        ratio = _ratio(logp, inputs)
        clipped = ratio.clamp(config["clip_low_threshold"], config["clip_high_threshold"])
        if name == "ppo":
            return -torch.minimum(ratio * advantages, clipped * advantages)
        # CISPO: the clipped ratio only weights the policy gradient; no gradient through it.
        return -clipped.detach() * logp * advantages
    penalty = (logp - inputs["logprobs"]) ** 2  # dro
    return -(logp * advantages - 0.5 * config["beta"] * penalty)


def loss_metrics(
    name: str,
    logp: torch.Tensor,
    inputs: Mapping[str, torch.Tensor],
    config: Mapping[str, float],
    elementwise: torch.Tensor,
) -> dict[str, float]:
    """Cheap batch metrics of a built-in loss (Tinker's ``name:reduction`` style).

    * ``loss:sum``: the loss (sum of ``elementwise``);
    * ``tokens:sum``: positions in the batch;
    * ``cross_entropy``: ``weights:sum`` (so ``loss:sum / weights:sum`` is the mean NLL);
    * policy losses: ``action_tokens:sum``, positions with a non-zero advantage; when
      there is at least one, ``ratio:mean`` (mean ``r`` over them) and, for ``ppo`` and
      ``cispo``, ``clip_fraction:mean`` (share of them with ``r`` outside ``[lo, hi]``).
    """
    import torch

    with torch.no_grad():
        metrics = {
            "loss:sum": float(elementwise.sum().item()),
            "tokens:sum": float(logp.shape[0]),
        }
        if name == "cross_entropy":
            metrics["weights:sum"] = float(inputs["weights"].sum().item())
            return metrics
        action = inputs["advantages"] != 0
        count = int(action.sum().item())
        metrics["action_tokens:sum"] = float(count)
        if count:
            ratio = _ratio(logp, inputs)[action]
            metrics["ratio:mean"] = float(ratio.mean().item())
            if "clip_low_threshold" in config:
                outside = (ratio < config["clip_low_threshold"]) | (
                    ratio > config["clip_high_threshold"]
                )
                metrics["clip_fraction:mean"] = float(outside.float().mean().item())
        return metrics
