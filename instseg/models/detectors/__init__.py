"""Whole detectors."""

from .mask_rcnn import MaskRCNN
from .two_stage import TwoStageDetector

__all__ = ['MaskRCNN', 'TwoStageDetector']
