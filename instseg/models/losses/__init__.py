"""Losses; importing this package registers them in ``instseg.registry.MODELS``.

All take ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``, compute
in fp32 (safe under autocast) and weight / reduce as described in :mod:`.utils`, whose
:class:`~.utils.WeightedLoss` is their base.
"""

from __future__ import annotations

from .cross_entropy_loss import (
    CrossEntropyLoss,
    mask_cross_entropy,
    sigmoid_cross_entropy,
    softmax_cross_entropy,
)
from .iou_loss import GIoULoss
from .smooth_l1_loss import L1Loss, SmoothL1Loss
from .utils import WeightedLoss, weight_reduce_loss

__all__ = [
    'CrossEntropyLoss',
    'GIoULoss',
    'L1Loss',
    'SmoothL1Loss',
    'WeightedLoss',
    'mask_cross_entropy',
    'sigmoid_cross_entropy',
    'softmax_cross_entropy',
    'weight_reduce_loss',
]
