"""Datasets (registered in ``instseg.registry.DATASETS``) and their transforms."""

from __future__ import annotations

from . import transforms  # noqa: F401  (registers the transforms)
from .coco import COCO_CLASSES, CocoDataset
from .demo_shapes import SHAPE_CLASSES, DemoShapesDataset, generate_shapes_dataset

__all__ = [
    'COCO_CLASSES',
    'CocoDataset',
    'SHAPE_CLASSES',
    'DemoShapesDataset',
    'generate_shapes_dataset',
]
