"""Second-stage heads: RoI feature extraction, box and mask heads."""

from .bbox_heads import ConvFCBBoxHead, Shared2FCBBoxHead, Shared4Conv1FCBBoxHead
from .cascade_roi_head import CascadeRoIHead
from .mask_heads import FCNMaskHead
from .roi_extractors import SingleRoIExtractor
from .standard_roi_head import StandardRoIHead

__all__ = [
    'CascadeRoIHead',
    'ConvFCBBoxHead',
    'FCNMaskHead',
    'Shared2FCBBoxHead',
    'Shared4Conv1FCBBoxHead',
    'SingleRoIExtractor',
    'StandardRoIHead',
]
