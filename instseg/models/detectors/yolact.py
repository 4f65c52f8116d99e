"""YOLACT (Bolya et al., ICCV 2019): real-time instance segmentation from prototypes."""

from __future__ import annotations

from instseg.models.detectors.single_stage_instance_seg import SingleStageInstanceSegmentor
from instseg.registry import MODELS


@MODELS.register_module()
class YOLACT(SingleStageInstanceSegmentor):
    """A :class:`SingleStageInstanceSegmentor` with a ``YOLACTHead`` and a ``YOLACTProtonet``."""
