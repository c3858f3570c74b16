"""Reward functions for RL: the contract, the built-ins, their registry and combination.

Core layer (pure, over ports). See ``docs/rewards.md``.
"""

from __future__ import annotations

from crucible_train.core.rewards.builtins import (
    FormatReward,
    LengthPenalty,
    PythonReward,
    ScorerReward,
    load_callable,
)
from crucible_train.core.rewards.combine import CombinedReward, RewardBatch, WeightedReward
from crucible_train.core.rewards.contract import Reward, RewardInput
from crucible_train.core.rewards.judge import JudgeReward
from crucible_train.core.rewards.metrics import reward_metrics
from crucible_train.core.rewards.registry import (
    BUILTIN_REWARDS,
    RewardSpec,
    build_reward,
    build_rewards,
    list_rewards,
)

__all__ = [
    "BUILTIN_REWARDS",
    "CombinedReward",
    "FormatReward",
    "JudgeReward",
    "LengthPenalty",
    "PythonReward",
    "Reward",
    "RewardBatch",
    "RewardInput",
    "RewardSpec",
    "ScorerReward",
    "WeightedReward",
    "build_reward",
    "build_rewards",
    "list_rewards",
    "load_callable",
    "reward_metrics",
]
