"""Test-time wrappers: augmentation and tiled (sliced) inference (in ``MODELS``)."""

from __future__ import annotations

from .det_tta import DetTTAModel
from .tiled_inference import TiledInferenceModel

__all__ = ['DetTTAModel', 'TiledInferenceModel']
