"""Instance masks as COCO RLEs with a lazy axis-aligned transform.

The RLEs stay at their source size; resize, flip, crop, pad and translate only compose two
per-axis index maps (see ``_index_maps``), so they cost O(H + W) whatever the number of
instances. Pixels are produced one instance at a time, and only inside the instance's box or the
window asked for, when ``crop_and_resize``, ``to_ndarray``, ``to_rle``, ``areas`` or
``get_bboxes`` need them; ``rotate`` re-encodes each instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_utils
import torch

from ._index_maps import IndexMappedMasks, compose
from ._rle_codec import Runs, encode_window, normalise_rle, tighten, zero_rle
from ._roi import roi_targets
from .base import (
    IndexLike,
    as_indices,
    as_roi_inputs,
    check_cat,
    check_out_shape,
    rotation_matrix,
)
from .bitmap import rotate_window
from .polygon import PolygonMasks


class RLEMasks(IndexMappedMasks):
    """N COCO run-length-encoded masks.

    Args:
        rles: COCO RLE dicts ``{'size': [height, width], 'counts': ...}`` with compressed
            counts (bytes or str) or uncompressed counts (list of ints).
        height: canvas height H.
        width: canvas width W.
    """

    def __init__(self, rles: Sequence[Mapping], height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        self._rles = [normalise_rle(r, self.height, self.width, i) for i, r in enumerate(rles)]
        self._src_shape = (self.height, self.width)
        # Source row (column) shown by each current row (column), -1 for padding; None = same.
        self._rows: np.ndarray | None = None
        self._cols: np.ndarray | None = None

    @classmethod
    def _lazy(
        cls,
        rles: list[dict],
        src_shape: tuple[int, int],
        rows: np.ndarray | None,
        cols: np.ndarray | None,
        height: int,
        width: int,
    ) -> RLEMasks:
        obj = cls.__new__(cls)
        obj.height, obj.width = int(height), int(width)
        obj._rles, obj._src_shape, obj._rows, obj._cols = rles, src_shape, rows, cols
        return obj

    @classmethod
    def from_polygons(cls, polygon_masks: PolygonMasks) -> RLEMasks:
        """Rasterise each instance of ``polygon_masks`` straight to RLE (no full-size bitmap)."""
        return cls(polygon_masks.to_rle(), polygon_masks.height, polygon_masks.width)

    def __len__(self) -> int:
        return len(self._rles)

    def __getitem__(self, index: IndexLike) -> RLEMasks:
        idx = as_indices(index, len(self))
        rles = self._rles[idx] if isinstance(idx, slice) else [self._rles[i] for i in idx]
        return self._lazy(rles, self._src_shape, self._rows, self._cols, self.height, self.width)

    @classmethod
    def cat(cls, masks: Sequence[RLEMasks]) -> RLEMasks:
        height, width = check_cat(cls, masks)
        parts = [m for m in masks if len(m)] or [masks[0]]
        first = parts[0]
        if all(m._same_transform(first) for m in parts):
            rles = [r for m in parts for r in m._rles]
            return cls._lazy(rles, first._src_shape, first._rows, first._cols, height, width)
        # Different source sizes or transforms: bring every part to the common canvas.
        return cls([r for m in parts for r in m.to_rle()], height, width)

    @classmethod
    def empty(cls, height: int, width: int) -> RLEMasks:
        return cls([], height, width)

    def _same_transform(self, other: RLEMasks) -> bool:
        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return a is b or (a is not None and b is not None and np.array_equal(a, b))

        return (
            self._src_shape == other._src_shape
            and same(self._rows, other._rows)
            and same(self._cols, other._cols)
        )

    def _row_map(self) -> np.ndarray:
        return np.arange(self._src_shape[0]) if self._rows is None else self._rows

    def _col_map(self) -> np.ndarray:
        return np.arange(self._src_shape[1]) if self._cols is None else self._cols

    def _remap(self, maps: tuple[np.ndarray, np.ndarray]) -> RLEMasks:
        rows, cols = maps
        src_h, src_w = self._src_shape
        return self._lazy(
            self._rles,
            self._src_shape,
            compose(self._rows, rows, src_h),
            compose(self._cols, cols, src_w),
            len(rows),
            len(cols),
        )

    def rotate(
        self,
        out_shape: tuple[int, int],
        angle: float,
        center: tuple[float, float] | None = None,
        scale: float = 1.0,
    ) -> RLEMasks:
        out_h, out_w = check_out_shape(out_shape, 'rotate')
        matrix = rotation_matrix(self.height, self.width, angle, center, scale)
        rles = []
        for i in range(len(self)):
            tight = self._tight(self._runs(i))
            moved = None if tight is None else rotate_window(*tight, matrix, out_h, out_w)
            rles.append(
                zero_rle(out_h, out_w) if moved is None else encode_window(*moved, out_h, out_w)
            )
        return RLEMasks(rles, out_h, out_w)

    def _runs(self, i: int) -> Runs:
        return Runs(self._rles[i], i)

    def _window(
        self, runs: Runs, y0: int, y1: int, x0: int, x1: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Current-canvas pixels [y0:y1, x0:x1] of one instance -> uint8 ndarray, decoding only
        the source pixels that land there (written into ``out`` when given, zeroed)."""
        if out is None:
            out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        box = runs.bbox()
        if box is None:
            return out
        rows, cols = self._row_map()[y0:y1], self._col_map()[x0:x1]
        keep_r = np.flatnonzero((rows >= box[0]) & (rows < box[1]))
        keep_c = np.flatnonzero((cols >= box[2]) & (cols < box[3]))
        if len(keep_r) == 0 or len(keep_c) == 0:
            return out
        src_r, src_c = rows[keep_r], cols[keep_c]
        r0, c0 = int(src_r.min()), int(src_c.min())
        region = runs.region(r0, int(src_r.max()) + 1, c0, int(src_c.max()) + 1)
        out[np.ix_(keep_r, keep_c)] = region[np.ix_(src_r - r0, src_c - c0)]
        return out

    def _footprint(self, runs: Runs) -> tuple[int, int, int, int] | None:
        """Smallest canvas box holding every row and column that shows the instance's source
        box -> (y0, y1, x0, x1), or None when none is shown; no pixel is decoded."""
        box = runs.bbox()
        if box is None:
            return None
        rows, cols = self._row_map(), self._col_map()
        ys = np.flatnonzero((rows >= box[0]) & (rows < box[1]))
        xs = np.flatnonzero((cols >= box[2]) & (cols < box[3]))
        if len(ys) == 0 or len(xs) == 0:
            return None
        return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1

    def _tight(self, runs: Runs) -> tuple[np.ndarray, int, int] | None:
        """The instance's pixels in its tight canvas box -> (uint8 window, y0, x0) or None."""
        footprint = self._footprint(runs)
        if footprint is None:
            return None
        y0, _, x0, _ = footprint
        return tighten(self._window(runs, *footprint), y0, x0)

    def crop_and_resize(
        self,
        bboxes: torch.Tensor,
        out_shape: tuple[int, int],
        inds: torch.Tensor,
        device: torch.device | str = 'cpu',
    ) -> torch.Tensor:
        boxes, idx = as_roi_inputs(bboxes, inds, len(self))
        parsed: dict[int, Runs] = {}  # each named instance is parsed once

        def cut(i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            if i not in parsed:
                parsed[i] = self._runs(i)
            return self._window(parsed[i], y0, y1, x0, x1)

        return roi_targets(cut, boxes, idx, out_shape, self.height, self.width, device)

    def to_ndarray(self) -> np.ndarray:
        out = np.zeros((len(self), self.height, self.width), dtype=np.uint8)
        for i in range(len(self)):
            runs = self._runs(i)
            footprint = self._footprint(runs)
            if footprint is not None:
                y0, y1, x0, x1 = footprint
                self._window(runs, y0, y1, x0, x1, out=out[i, y0:y1, x0:x1])
        return out

    def to_rle(self) -> list[dict]:
        if self._rows is None and self._cols is None:
            return [{'size': list(r['size']), 'counts': r['counts']} for r in self._rles]
        rles = []
        for i in range(len(self)):
            tight = self._tight(self._runs(i))
            rles.append(
                zero_rle(self.height, self.width)
                if tight is None
                else encode_window(*tight, self.height, self.width)
            )
        return rles

    @property
    def areas(self) -> np.ndarray:
        if len(self) == 0:
            return np.zeros(0, dtype=np.float32)
        if self._rows is None and self._cols is None:
            # pycocotools 2.0.11 under numpy 2 overflows on lists of 256+ RLEs: go in chunks.
            chunks = [self._rles[i : i + 255] for i in range(0, len(self), 255)]
            return np.concatenate([mask_utils.area(c) for c in chunks]).astype(np.float32)
        areas = np.zeros(len(self), dtype=np.float32)
        for i in range(len(self)):
            tight = self._tight(self._runs(i))
            if tight is not None:
                areas[i] = tight[0].sum(dtype=np.int64)
        return areas

    def get_bboxes(self) -> np.ndarray:
        boxes = np.zeros((len(self), 4), dtype=np.float32)
        identity = self._rows is None and self._cols is None
        for i in range(len(self)):
            runs = self._runs(i)
            if identity:
                box = runs.bbox()
                if box is not None:
                    boxes[i] = (box[2], box[0], box[3], box[1])
                continue
            tight = self._tight(runs)
            if tight is not None:
                window, y0, x0 = tight
                boxes[i] = (x0, y0, x0 + window.shape[1], y0 + window.shape[0])
        return boxes
