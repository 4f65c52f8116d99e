"""Test-time augmentation wrappers (registered in ``instseg.registry.MODELS``)."""

from __future__ import annotations

from .det_tta import DetTTAModel

__all__ = ['DetTTAModel']
