"""Data transforms: loading, geometry, packing (registered in ``instseg.registry.TRANSFORMS``)."""

from __future__ import annotations

from .formatting import PackDetInputs
from .geometric import RandomFlip, Resize
from .loading import LoadAnnotations, LoadImageFromFile

__all__ = ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'PackDetInputs']
