"""L1 and smooth-L1 regression losses on box deltas."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from instseg.registry import MODELS

from .utils import check_reduction, pick_reduction, weight_reduce_loss


def _check_pair(pred: Tensor, target: Tensor, owner: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f'{owner}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must '
            'have the same shape'
        )


@MODELS.register_module()
class L1Loss(nn.Module):
    """``|pred - target|`` element-wise on ``pred, target [N, 4]`` (any equal shapes), weighted and
    reduced as in :mod:`instseg.models.losses.utils`; computed and returned in fp32.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight: Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.loss_weight = loss_weight

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        """Weighted, reduced L1 loss (fp32 scalar, or ``[N, 4]`` with ``'none'``)."""
        name = type(self).__name__
        reduction = pick_reduction(self.reduction, reduction_override, name)
        _check_pair(pred, target, name)
        loss = (pred.float() - target.float()).abs()
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor, name)

    def extra_repr(self) -> str:
        return f'reduction={self.reduction!r}, loss_weight={self.loss_weight}'


@MODELS.register_module()
class SmoothL1Loss(nn.Module):
    """Huber-style loss ``0.5 * d**2 / beta`` for ``d = |pred - target| < beta``, else
    ``d - 0.5 * beta``, element-wise on equal-shaped ``pred, target [N, 4]``; fp32.

    Args:
        beta: Where the loss turns from quadratic to linear; ``0`` gives L1. Defaults to 1.0.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight: Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(
        self, beta: float = 1.0, reduction: str = 'mean', loss_weight: float = 1.0
    ) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f'SmoothL1Loss: beta must be >= 0, got {beta}')
        self.beta = float(beta)
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.loss_weight = loss_weight

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        """Weighted, reduced smooth-L1 loss (fp32 scalar, or ``[N, 4]`` with ``'none'``)."""
        name = type(self).__name__
        reduction = pick_reduction(self.reduction, reduction_override, name)
        _check_pair(pred, target, name)
        loss = F.smooth_l1_loss(pred.float(), target.float(), reduction='none', beta=self.beta)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor, name)

    def extra_repr(self) -> str:
        return f'beta={self.beta}, reduction={self.reduction!r}, loss_weight={self.loss_weight}'
