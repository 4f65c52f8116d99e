"""Whole detectors."""

from .cascade_rcnn import CascadeRCNN
from .mask_rcnn import MaskRCNN
from .single_stage_instance_seg import SingleStageInstanceSegmentor
from .two_stage import TwoStageDetector
from .yolact import YOLACT

__all__ = ['YOLACT', 'CascadeRCNN', 'MaskRCNN', 'SingleStageInstanceSegmentor', 'TwoStageDetector']
