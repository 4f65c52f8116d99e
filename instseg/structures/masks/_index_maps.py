"""Axis-aligned geometry of BitmapMasks as per-axis index maps.

Resize (nearest), flip, crop, pad and translate all move whole rows and whole columns, so each
is described by two int64 arrays: for every output row (column) the input row (column) it copies,
or -1 for an empty one; BitmapMasks gathers with them at every step. RLEMasks instead composes
the operations exactly (``_axis_map``) and samples its source once; for any single operation the
two give exactly the same pixels.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from .base import BaseInstanceMasks, check_direction, check_out_shape, check_pad, crop_window

IndexMaps = tuple[np.ndarray, np.ndarray]


def resize_index(src: int, dst: int) -> np.ndarray:
    """Nearest input index for each of ``dst`` outputs, sampling at pixel centres -> int64[dst]."""
    if src == 0:
        return np.full(dst, -1, dtype=np.int64)
    # Integer form of floor((j + 0.5) * src / dst), so no float tie is rounded the wrong way.
    return (2 * np.arange(dst, dtype=np.int64) + 1) * src // (2 * dst)


def shift_index(src: int, dst: int, offset: float) -> np.ndarray:
    """Input index of each of ``dst`` outputs after shifting by ``offset`` (-1 outside)."""
    idx = np.floor(np.arange(dst) + 0.5 - offset).astype(np.int64)
    idx[(idx < 0) | (idx >= src)] = -1
    return idx


def resize_maps(height: int, width: int, out_shape: tuple[int, int]) -> IndexMaps:
    """Index maps of a nearest resize to ``out_shape`` (h, w)."""
    out_h, out_w = check_out_shape(out_shape, 'resize')
    return resize_index(height, out_h), resize_index(width, out_w)


def flip_maps(height: int, width: int, direction: str) -> IndexMaps:
    """Index maps of a flip ('horizontal', 'vertical' or 'diagonal')."""
    check_direction(direction, ('horizontal', 'vertical', 'diagonal'))
    rows = np.arange(height, dtype=np.int64)
    cols = np.arange(width, dtype=np.int64)
    if direction in ('vertical', 'diagonal'):
        rows = rows[::-1].copy()
    if direction in ('horizontal', 'diagonal'):
        cols = cols[::-1].copy()
    return rows, cols


def crop_maps(height: int, width: int, bbox: np.ndarray) -> IndexMaps:
    """Index maps of a crop to ``bbox`` [x1, y1, x2, y2] (see ``crop_window``)."""
    x1, y1, w, h = crop_window(height, width, bbox)
    return shift_index(height, h, -y1), shift_index(width, w, -x1)


def pad_maps(height: int, width: int, out_shape: tuple[int, int]) -> IndexMaps:
    """Index maps of bottom/right padding to ``out_shape``."""
    out_h, out_w = check_pad(height, width, out_shape)
    return shift_index(height, out_h, 0), shift_index(width, out_w, 0)


def translate_maps(
    height: int, width: int, out_shape: tuple[int, int], offset: float, direction: str
) -> IndexMaps:
    """Index maps of a shift by ``offset`` along ``direction`` onto an ``out_shape`` canvas."""
    out_h, out_w = check_out_shape(out_shape, 'translate')
    check_direction(direction, ('horizontal', 'vertical'))
    dy, dx = (0.0, offset) if direction == 'horizontal' else (offset, 0.0)
    return shift_index(height, out_h, dy), shift_index(width, out_w, dx)


def gather(masks: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Apply index maps to uint8 masks[N, H, W] -> uint8[N, len(rows), len(cols)]."""
    n, h, w = masks.shape
    if h == 0 or w == 0:
        return np.zeros((n, len(rows), len(cols)), dtype=np.uint8)
    out = masks[:, np.maximum(rows, 0)][:, :, np.maximum(cols, 0)]
    out[:, rows < 0] = 0
    out[:, :, cols < 0] = 0
    return out


class IndexMappedMasks(BaseInstanceMasks):
    """Masks whose resize, flip, crop, pad and translate are index maps handed to ``_remap``."""

    @abstractmethod
    def _remap(self, maps: IndexMaps) -> IndexMappedMasks:
        """Apply per-axis index maps (rows, cols) -> a new container of the same class."""

    def resize(self, out_shape: tuple[int, int]) -> IndexMappedMasks:
        return self._remap(resize_maps(self.height, self.width, out_shape))

    def flip(self, direction: str = 'horizontal') -> IndexMappedMasks:
        return self._remap(flip_maps(self.height, self.width, direction))

    def crop(self, bbox: np.ndarray) -> IndexMappedMasks:
        return self._remap(crop_maps(self.height, self.width, bbox))

    def pad(self, out_shape: tuple[int, int]) -> IndexMappedMasks:
        return self._remap(pad_maps(self.height, self.width, out_shape))

    def translate(
        self, out_shape: tuple[int, int], offset: float, direction: str = 'horizontal'
    ) -> IndexMappedMasks:
        return self._remap(translate_maps(self.height, self.width, out_shape, offset, direction))
