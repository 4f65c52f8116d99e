"""Weighting and reduction shared by every loss.

Every loss computes an element-wise loss in fp32, then :func:`weight_reduce_loss`:

- ``weight`` is per element (same shape as the loss) or per sample (a prefix of its shape, e.g.
  ``[N]`` for a ``[N, 4]`` loss), and multiplies the element-wise loss;
- ``reduction='none'`` returns the weighted loss, ``'sum'`` its sum, ``'mean'`` its mean, or, when
  ``avg_factor`` is given, ``sum / (avg_factor + eps)`` (``avg_factor`` with ``'sum'`` is an error);
- an empty loss reduces to ``0`` that still has a ``grad_fn`` connected to the prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, owner: str) -> str:
    """Return ``reduction`` or raise ValueError naming ``owner``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'{owner}: reduction must be one of {REDUCTIONS}, got {reduction!r}')
    return reduction


def pick_reduction(default: str, override: str | None, owner: str) -> str:
    """The reduction for one call: ``override`` when given, else the module's ``default``."""
    return check_reduction(override if override else default, owner)


def broadcast_weight(weight: Tensor, loss: Tensor, owner: str) -> Tensor:
    """``weight`` as fp32, reshaped so that it broadcasts onto ``loss`` without enlarging it."""
    weight = weight.float()
    if weight.ndim < loss.ndim and weight.shape == loss.shape[: weight.ndim]:
        weight = weight.reshape(*weight.shape, *([1] * (loss.ndim - weight.ndim)))
    try:
        shape = torch.broadcast_shapes(weight.shape, loss.shape)
    except RuntimeError:
        shape = None
    if shape != loss.shape:
        raise ValueError(
            f'{owner}: weight of shape {tuple(weight.shape)} does not fit the loss of '
            f'shape {tuple(loss.shape)} (give it per element or per sample)'
        )
    return weight


def weight_reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: str = 'mean',
    avg_factor: float | Tensor | None = None,
    owner: str = 'loss',
) -> Tensor:
    """Weight an element-wise ``loss`` and reduce it (see the module docstring)."""
    if weight is not None:
        loss = loss * broadcast_weight(weight, loss, owner)
    if reduction == 'none':
        return loss
    if avg_factor is not None and reduction == 'sum':
        raise ValueError(f'{owner}: avg_factor can not be used with reduction="sum"')
    if loss.numel() == 0:
        return loss.sum() * 0
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is None:
        return loss.mean()
    # Same epsilon as mmdetection, so an avg_factor of 0 gives 0 instead of NaN.
    return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
