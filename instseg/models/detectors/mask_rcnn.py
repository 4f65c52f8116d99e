"""Mask R-CNN (He et al., 2017)."""

from __future__ import annotations

from instseg.models.detectors.two_stage import TwoStageDetector
from instseg.registry import MODELS


@MODELS.register_module()
class MaskRCNN(TwoStageDetector):
    """A :class:`TwoStageDetector` whose RoI head has a mask branch."""
