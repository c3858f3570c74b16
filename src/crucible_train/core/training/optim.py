"""Optimiser settings shared by the epoch-based recipes (SFT and DPO)."""

from __future__ import annotations

from crucible_train.core.scheduling import Warmup, parse_schedule
from crucible_train.types import AdamParams

__all__ = ["ScheduledAdamW"]


class ScheduledAdamW:
    """Mixin for a config with a warmup + schedule and AdamW fields (declared by it)."""

    lr_schedule: str
    warmup_steps: int
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    grad_clip_norm: float

    def schedule(self) -> Warmup:
        """The learning-rate schedule, warmup included."""
        return Warmup(steps=self.warmup_steps, base=parse_schedule(self.lr_schedule))

    def adam(self, learning_rate: float) -> AdamParams:
        """AdamW parameters of one step at ``learning_rate``."""
        return AdamParams(
            learning_rate=learning_rate,
            beta1=self.beta1,
            beta2=self.beta2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            grad_clip_norm=self.grad_clip_norm,
        )
