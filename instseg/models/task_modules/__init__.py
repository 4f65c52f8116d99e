"""Box task utilities for two-stage detectors: anchors, box coding, assignment and sampling.

Importing this package registers every type below in ``instseg.registry.TASK_UTILS``.
Boxes everywhere are ``(x1, y1, x2, y2)`` float tensors in continuous pixel coordinates of the
network input, with width ``x2 - x1`` (no ``+ 1``), as in mmdetection 3.x.
"""

from __future__ import annotations

from .assigners import AssignResult, BboxOverlaps2D, MaxIoUAssigner, bbox_overlaps
from .coders import DeltaXYWHBBoxCoder
from .prior_generators import AnchorGenerator
from .samplers import PseudoSampler, RandomSampler, SamplingResult

__all__ = [
    'AnchorGenerator',
    'AssignResult',
    'BboxOverlaps2D',
    'DeltaXYWHBBoxCoder',
    'MaxIoUAssigner',
    'PseudoSampler',
    'RandomSampler',
    'SamplingResult',
    'bbox_overlaps',
]
