"""Data transforms: loading, geometry, colour, filtering, wrappers and packing (registered in
``instseg.registry.TRANSFORMS`` under mmdetection's names)."""

from __future__ import annotations

from .crop import CropTile, RandomCrop
from .expand import Expand
from .filtering import FilterAnnotations
from .formatting import PackDetInputs
from .geometric import Pad, RandomChoiceResize, RandomFlip, RandomResize, Resize
from .loading import LoadAnnotations, LoadImageFromFile
from .min_iou_crop import MinIoURandomCrop
from .photometric import PhotoMetricDistortion
from .wrappers import AutoAugment, RandomChoice, TestTimeAug

__all__ = [
    'AutoAugment',
    'Expand',
    'FilterAnnotations',
    'LoadAnnotations',
    'LoadImageFromFile',
    'MinIoURandomCrop',
    'PackDetInputs',
    'Pad',
    'PhotoMetricDistortion',
    'RandomChoice',
    'RandomChoiceResize',
    'CropTile',
    'RandomCrop',
    'RandomFlip',
    'RandomResize',
    'Resize',
    'TestTimeAug',
]
