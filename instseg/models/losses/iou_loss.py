"""Generalized-IoU loss on decoded boxes."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from instseg.registry import MODELS

from .utils import WeightedLoss


@MODELS.register_module()
class GIoULoss(WeightedLoss):
    """``1 - GIoU(pred, target)`` per box pair, for decoded ``(x1, y1, x2, y2)`` boxes ``[N, 4]``.

    The loss is ``[N]``; a ``[N, 4]`` weight (as box heads produce) is averaged to ``[N]`` first.
    Computed with :func:`torchvision.ops.generalized_box_iou_loss` in fp32 (a scalar, or ``[N]``
    with ``'none'``).

    Args:
        eps: Added to denominators. Defaults to 1e-6.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight: Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(
        self, eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.eps = eps

    def elementwise(
        self, pred: Tensor, target: Tensor, weight: Tensor | None
    ) -> tuple[Tensor, Tensor | None, None]:
        """``1 - GIoU`` per box pair ``[N]`` in fp32, and the weight per box."""
        if pred.shape != target.shape or pred.shape[-1] != 4:
            raise ValueError(
                f'GIoULoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} '
                'must both be [N, 4] boxes'
            )
        if weight is not None and weight.ndim == pred.ndim:
            weight = weight.float().mean(-1)
        loss = generalized_box_iou_loss(
            pred.float(), target.float(), reduction='none', eps=self.eps
        )
        return loss, weight, None

    def extra_repr(self) -> str:
        return f'eps={self.eps}, reduction={self.reduction!r}, loss_weight={self.loss_weight}'
