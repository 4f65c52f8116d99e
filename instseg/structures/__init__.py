"""Data containers: per-image samples, instance masks, box helpers."""

from .bbox import bbox2roi, clip_boxes, scale_boxes
from .det_data_sample import DetDataSample, SampleList
from .masks import BaseInstanceMasks, BitmapMasks, PolygonMasks, RLEMasks

__all__ = [
    'BaseInstanceMasks',
    'BitmapMasks',
    'DetDataSample',
    'PolygonMasks',
    'RLEMasks',
    'SampleList',
    'bbox2roi',
    'clip_boxes',
    'scale_boxes',
]
