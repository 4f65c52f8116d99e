"""Weighting and reduction shared by every loss, and :class:`WeightedLoss`, their base.

Every loss computes an element-wise loss in fp32, then :func:`weight_reduce_loss`:

- ``weight`` is per element (same shape as the loss) or per sample (a prefix of its shape, e.g.
  ``[N]`` for a ``[N, 4]`` loss), and multiplies the element-wise loss;
- ``reduction='none'`` returns the weighted loss, ``'sum'`` its sum, ``'mean'`` its mean, or, when
  ``avg_factor`` is given, ``sum / (avg_factor + eps)`` (``avg_factor`` with ``'sum'`` is an error);
- an empty loss reduces to ``0`` that still has a ``grad_fn`` connected to the prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

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


class WeightedLoss(nn.Module):
    """Base of instseg's losses: ``loss_weight`` times :func:`weight_reduce_loss` of the
    element-wise loss that a subclass's ``elementwise`` computes.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None, **extra)``
    hands ``pred``, ``target``, ``weight`` and ``extra`` to ``elementwise``, which returns the
    fp32 element-wise loss, the weight to apply to it, and the ``avg_factor`` to use for a
    ``'mean'`` when the caller gives none (None: the plain mean).

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight: Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.loss_weight = loss_weight

    def elementwise(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, **extra: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(fp32 element-wise loss, its weight, default ``avg_factor`` of a mean)."""
        raise NotImplementedError(f'{type(self).__name__} must define elementwise')

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
        **extra: Tensor | None,
    ) -> Tensor:
        """Weighted, reduced loss: an fp32 scalar, or the element-wise loss with ``'none'``."""
        name = type(self).__name__
        reduction = pick_reduction(self.reduction, reduction_override, name)
        loss, weight, mean_factor = self.elementwise(pred, target, weight, **extra)
        if avg_factor is None and reduction == 'mean':
            avg_factor = mean_factor
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor, name)
