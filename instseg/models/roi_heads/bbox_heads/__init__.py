"""Box heads on pooled RoI features."""

from .convfc_bbox_head import (
    ConvFCBBoxHead,
    Shared2FCBBoxHead,
    Shared4Conv1FCBBoxHead,
    multiclass_nms,
)

__all__ = ['ConvFCBBoxHead', 'Shared2FCBBoxHead', 'Shared4Conv1FCBBoxHead', 'multiclass_nms']
