"""Data containers: per-image samples, instance masks (ground truth and predicted), box
helpers."""

from .bbox import bbox2roi, clip_boxes, scale_boxes
from .det_data_sample import DetDataSample, SampleList
from .masks import BaseInstanceMasks, BitmapMasks, PolygonMasks, RLEMasks
from .predicted_masks import PredictedMasks

__all__ = [
    'BaseInstanceMasks',
    'BitmapMasks',
    'DetDataSample',
    'PolygonMasks',
    'PredictedMasks',
    'RLEMasks',
    'SampleList',
    'bbox2roi',
    'clip_boxes',
    'scale_boxes',
]
