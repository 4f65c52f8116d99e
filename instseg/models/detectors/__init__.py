"""Whole detectors."""

from .cascade_rcnn import CascadeRCNN
from .mask_rcnn import MaskRCNN
from .two_stage import TwoStageDetector

__all__ = ['CascadeRCNN', 'MaskRCNN', 'TwoStageDetector']
