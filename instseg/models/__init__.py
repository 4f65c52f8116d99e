"""Models: backbones, necks, heads, task utilities, losses and detectors."""

from . import (
    backbones,
    dense_heads,
    detectors,
    losses,
    necks,
    roi_heads,
    task_modules,
    test_time_augs,
)
from .data_preprocessor import DetDataPreprocessor

__all__ = [
    'DetDataPreprocessor',
    'backbones',
    'dense_heads',
    'detectors',
    'losses',
    'necks',
    'roi_heads',
    'task_modules',
    'test_time_augs',
]
