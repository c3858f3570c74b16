"""AdamW for the local PyTorch engine: one per client, its hyper-parameters set each step.

:func:`adamw_step` is numerically the step of ``torch.optim.AdamW`` with ``lr``,
``betas``, ``eps`` and ``weight_decay`` from :class:`~crucible_train.types.AdamParams`;
when ``grad_clip_norm > 0`` the global gradient norm is clipped to it first
(``torch.nn.utils.clip_grad_norm_``). Parameters without a gradient are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from crucible_train.errors import TrainingClientError
from crucible_train.types import AdamParams

if TYPE_CHECKING:
    import torch

__all__ = ["adamw_step", "new_adamw"]


def new_adamw(parameters: Sequence[torch.nn.Parameter]) -> torch.optim.AdamW:
    """An AdamW over ``parameters``; :func:`adamw_step` sets its hyper-parameters."""
    import torch

    return torch.optim.AdamW(list(parameters), lr=0.0)


def adamw_step(
    adamw: torch.optim.Optimizer, parameters: Sequence[torch.nn.Parameter], params: AdamParams
) -> float:
    """Clip (if asked), step ``adamw`` with ``params`` and clear the gradients.

    Returns:
        The global L2 norm of the gradients before clipping.

    Raises:
        TrainingClientError: the norm is not finite; the step is skipped and the gradients
            cleared.
    """
    import torch

    grads = [p.grad for p in parameters if p.grad is not None]
    if params.grad_clip_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(parameters, params.grad_clip_norm)
    elif grads:
        # The norm clip_grad_norm_ computes (torch.nn.utils.get_total_norm needs 2.6).
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads])
        )
    else:
        norm = torch.zeros(())
    grad_norm = float(norm.item())
    if not np.isfinite(grad_norm):
        adamw.zero_grad(set_to_none=True)
        raise TrainingClientError(
            f"optim_step: the gradient norm is {grad_norm}; the step was skipped and the "
            "gradients cleared (lower the learning rate or check the loss inputs)"
        )
    for group in adamw.param_groups:
        group["lr"] = params.learning_rate
        group["betas"] = (params.beta1, params.beta2)
        group["eps"] = params.eps
        group["weight_decay"] = params.weight_decay
    adamw.step()
    adamw.zero_grad(set_to_none=True)
    return grad_norm
