"""Datasets (``DATASETS``), batch samplers (``DATA_SAMPLERS``) and transforms (``TRANSFORMS``)."""

from __future__ import annotations

from . import transforms  # noqa: F401  (registers the transforms)
from .coco import COCO_CLASSES, CocoDataset
from .demo_shapes import SHAPE_CLASSES, DemoShapesDataset, generate_shapes_dataset
from .samplers import AspectRatioBatchSampler
from .tiled_dataset import TiledDataset

__all__ = [
    'COCO_CLASSES',
    'AspectRatioBatchSampler',
    'CocoDataset',
    'SHAPE_CLASSES',
    'DemoShapesDataset',
    'generate_shapes_dataset',
    'TiledDataset',
]
