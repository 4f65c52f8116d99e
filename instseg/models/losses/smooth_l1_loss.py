"""L1 and smooth-L1 regression losses on box deltas."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from instseg.registry import MODELS

from .utils import WeightedLoss


def _check_pair(pred: Tensor, target: Tensor, owner: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f'{owner}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must '
            'have the same shape'
        )


@MODELS.register_module()
class L1Loss(WeightedLoss):
    """``|pred - target|`` element-wise on ``pred, target [N, 4]`` (any equal shapes), weighted and
    reduced as in :mod:`instseg.models.losses.utils`; computed and returned in fp32 (a scalar, or
    ``[N, 4]`` with ``'none'``).

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight: Multiplier of the loss. Defaults to 1.0.
    """

    def elementwise(
        self, pred: Tensor, target: Tensor, weight: Tensor | None
    ) -> tuple[Tensor, Tensor | None, None]:
        """``|pred - target|`` in fp32."""
        _check_pair(pred, target, type(self).__name__)
        return (pred.float() - target.float()).abs(), weight, None

    def extra_repr(self) -> str:
        return f'reduction={self.reduction!r}, loss_weight={self.loss_weight}'


@MODELS.register_module()
class SmoothL1Loss(WeightedLoss):
    """Huber-style loss ``0.5 * d**2 / beta`` for ``d = |pred - target| < beta``, else
    ``d - 0.5 * beta``, element-wise on equal-shaped ``pred, target [N, 4]``; fp32 (a scalar, or
    ``[N, 4]`` with ``'none'``).

    Args:
        beta: Where the loss turns from quadratic to linear; ``0`` gives L1. Defaults to 1.0.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight: Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(
        self, beta: float = 1.0, reduction: str = 'mean', loss_weight: float = 1.0
    ) -> None:
        super().__init__(reduction, loss_weight)
        if beta < 0:
            raise ValueError(f'SmoothL1Loss: beta must be >= 0, got {beta}')
        self.beta = float(beta)

    def elementwise(
        self, pred: Tensor, target: Tensor, weight: Tensor | None
    ) -> tuple[Tensor, Tensor | None, None]:
        """Smooth-L1 of ``pred - target`` in fp32."""
        _check_pair(pred, target, type(self).__name__)
        loss = F.smooth_l1_loss(pred.float(), target.float(), reduction='none', beta=self.beta)
        return loss, weight, None

    def extra_repr(self) -> str:
        return f'beta={self.beta}, reduction={self.reduction!r}, loss_weight={self.loss_weight}'
