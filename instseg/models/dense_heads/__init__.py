"""Dense (per-anchor) heads: RPN and single-stage instance heads."""

from .rpn_head import RPNHead
from .yolact_head import YOLACTHead
from .yolact_protonet import SegmentationModule, YOLACTProtonet

__all__ = ['RPNHead', 'SegmentationModule', 'YOLACTHead', 'YOLACTProtonet']
