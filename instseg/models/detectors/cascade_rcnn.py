"""Cascade R-CNN (Cai and Vasconcelos, 2018) and Cascade Mask R-CNN."""

from __future__ import annotations

from instseg.models.detectors.two_stage import TwoStageDetector
from instseg.registry import MODELS


@MODELS.register_module()
class CascadeRCNN(TwoStageDetector):
    """A :class:`TwoStageDetector` whose RoI head is a ``CascadeRoIHead``.

    ``train_cfg.rcnn`` is a list with one ``assigner``/``sampler`` dict per cascade stage;
    ``test_cfg.rcnn`` is a single dict as for Mask R-CNN.
    """
