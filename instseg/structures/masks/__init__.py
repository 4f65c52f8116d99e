"""Instance-mask containers: polygons, dense bitmaps and COCO RLEs behind one interface."""

from __future__ import annotations

from .base import BaseInstanceMasks
from .bitmap import BitmapMasks
from .polygon import PolygonMasks
from .rle import RLEMasks

__all__ = ['BaseInstanceMasks', 'BitmapMasks', 'PolygonMasks', 'RLEMasks']
