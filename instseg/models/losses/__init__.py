"""Losses; importing this package registers them in ``instseg.registry.MODELS``.

All take ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``, compute
in fp32 (safe under autocast) and weight / reduce as described in :mod:`.utils`.
"""

from __future__ import annotations

from .cross_entropy_loss import (
    CrossEntropyLoss,
    binary_cross_entropy,
    cross_entropy,
    mask_cross_entropy,
)
from .iou_loss import GIoULoss
from .smooth_l1_loss import L1Loss, SmoothL1Loss
from .utils import weight_reduce_loss

__all__ = [
    'CrossEntropyLoss',
    'GIoULoss',
    'L1Loss',
    'SmoothL1Loss',
    'binary_cross_entropy',
    'cross_entropy',
    'mask_cross_entropy',
    'weight_reduce_loss',
]
