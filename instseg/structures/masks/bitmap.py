"""Instance masks as a dense uint8 array [N, H, W]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_utils

from .base import IndexLike, PixelMasks, Window, as_indices, check_cat, paint_windows
from .geometry import CanvasMap


class BitmapMasks(PixelMasks):
    """N binary masks stored densely; every geometric step resamples the pixels at once.

    Args:
        masks: uint8/bool ndarray[N, H, W] (or a list of [H, W] arrays); non-zero is foreground.
        height: canvas height H.
        width: canvas width W.
    """

    def __init__(self, masks: np.ndarray | Sequence[np.ndarray], height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        if isinstance(masks, (list, tuple)):
            masks = np.stack(masks) if len(masks) else np.zeros((0, height, width), np.uint8)
        masks = np.asarray(masks)
        if masks.size == 0 and masks.ndim != 3:
            masks = masks.reshape(0, self.height, self.width)
        if masks.ndim != 3 or masks.shape[1:] != (self.height, self.width):
            raise ValueError(
                f'BitmapMasks: masks of shape {masks.shape} do not match '
                f'[N, height={self.height}, width={self.width}]'
            )
        if masks.dtype == np.bool_:
            masks = masks.view(np.uint8)
        elif not np.issubdtype(masks.dtype, np.integer):
            raise ValueError(f'BitmapMasks: masks must be uint8 or bool, got {masks.dtype}')
        elif masks.dtype != np.uint8 or (masks.size and masks.max() > 1):
            # 0/255 masks read from image files: keep the 0/1 contract the targets rely on.
            masks = (masks != 0).view(np.uint8)
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: IndexLike) -> BitmapMasks:
        return BitmapMasks(self.masks[as_indices(index, len(self))], self.height, self.width)

    @classmethod
    def cat(cls, masks: Sequence[BitmapMasks]) -> BitmapMasks:
        height, width = check_cat(cls, masks)
        return cls(np.concatenate([m.masks for m in masks]), height, width)

    def _moved(self, canvas_map: CanvasMap) -> BitmapMasks:
        rows, cols = canvas_map.indices  # source row (column) per output one, -1 for none
        out_h, out_w = canvas_map.shape
        if self.height == 0 or self.width == 0:
            return BitmapMasks(np.zeros((len(self), out_h, out_w), np.uint8), out_h, out_w)
        out = self.masks
        if rows is not None:
            out = out[:, np.maximum(rows, 0)]
            out[:, rows < 0] = 0
        if cols is not None:
            out = out[:, :, np.maximum(cols, 0)]
            out[:, :, cols < 0] = 0
        return BitmapMasks(out, out_h, out_w)

    def _window(self, i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.masks[i, y0:y1, x0:x1]

    @classmethod
    def _from_windows(cls, windows: Sequence[Window | None], height: int, width: int):
        return cls(paint_windows(windows, height, width), height, width)

    def to_ndarray(self) -> np.ndarray:
        return self.masks.copy()

    def to_rle(self) -> list[dict]:
        return [mask_utils.encode(np.asfortranarray(mask)) for mask in self.masks]

    @property
    def areas(self) -> np.ndarray:
        return self.masks.sum(axis=(1, 2), dtype=np.int64).astype(np.float32)

    def get_bboxes(self) -> np.ndarray:
        return tight_boxes(self.masks.any(axis=2), self.masks.any(axis=1))


def tight_boxes(rows_any: np.ndarray, cols_any: np.ndarray) -> np.ndarray:
    """Boxes from per-instance row/column occupancy bool[N, H], bool[N, W] -> float32[N, 4]."""
    n, h = rows_any.shape
    w = cols_any.shape[1]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0 or h == 0 or w == 0:
        return boxes
    nonempty = rows_any.any(axis=1)
    boxes[:, 0] = np.argmax(cols_any, axis=1)
    boxes[:, 1] = np.argmax(rows_any, axis=1)
    boxes[:, 2] = w - np.argmax(cols_any[:, ::-1], axis=1)
    boxes[:, 3] = h - np.argmax(rows_any[:, ::-1], axis=1)
    boxes[~nonempty] = 0
    return boxes
