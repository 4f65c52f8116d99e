"""IoU calculators and prior-to-ground-truth assigners."""

from __future__ import annotations

from .assign_result import AssignResult
from .iou2d_calculator import BboxOverlaps2D, bbox_overlaps
from .max_iou_assigner import MaxIoUAssigner

__all__ = ['AssignResult', 'BboxOverlaps2D', 'MaxIoUAssigner', 'bbox_overlaps']
