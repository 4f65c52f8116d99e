"""Instance masks as COCO RLEs with a lazy axis-aligned transform.

The RLEs stay at their source size; resize, flip, crop, pad and translate only compose two
exact per-axis affine maps (see ``_axis_map``), so they cost O(1) whatever the number of
instances, and the source is resampled once however long the chain. Pixels are produced one
instance at a time, and only inside the instance's box or the window asked for, when
``crop_and_resize``, ``to_ndarray`` or ``to_rle`` need them; ``rotate`` re-encodes each
instance. ``areas`` and ``get_bboxes`` decode nothing: they follow every instance's runs,
column by column, through the axis maps, all instances at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_utils
import torch

from ._axis_map import AxisMap
from ._rle_codec import Runs, encode_window, foreground_runs, normalise_rle, tighten, zero_rle
from ._roi import roi_targets
from .base import (
    BaseInstanceMasks,
    IndexLike,
    as_indices,
    as_roi_inputs,
    check_cat,
    check_direction,
    check_out_shape,
    check_pad,
    crop_window,
    rotation_matrix,
)
from .bitmap import rotate_window
from .polygon import PolygonMasks


class RLEMasks(BaseInstanceMasks):
    """N COCO run-length-encoded masks.

    Geometry is lazy: after resize, flip, crop, pad or translate, current pixel (i, j) shows the
    source pixel its centre maps back to through the whole chain (nearest sampling, done once).
    A single operation gives exactly the pixels :class:`BitmapMasks` gives; a chain with two or
    more resamplings (say two resizes) is sharper than BitmapMasks, which resamples each step.

    Args:
        rles: COCO RLE dicts ``{'size': [height, width], 'counts': ...}`` with compressed
            counts (bytes or str) or uncompressed counts (list of ints).
        height: canvas height H.
        width: canvas width W.
    """

    def __init__(self, rles: Sequence[Mapping], height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        self._rles = [normalise_rle(r, self.height, self.width, i) for i, r in enumerate(rles)]
        self._ymap = AxisMap.identity(self.height)
        self._xmap = AxisMap.identity(self.width)
        self._maps: tuple[np.ndarray | None, np.ndarray | None] | None = None

    @classmethod
    def _lazy(
        cls,
        rles: list[dict],
        ymap: AxisMap,
        xmap: AxisMap,
        maps: tuple[np.ndarray | None, np.ndarray | None] | None = None,
    ) -> RLEMasks:
        obj = cls.__new__(cls)
        obj.height, obj.width = ymap.size, xmap.size
        obj._rles, obj._ymap, obj._xmap, obj._maps = rles, ymap, xmap, maps
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
        return self._lazy(rles, self._ymap, self._xmap, self._maps)

    @classmethod
    def cat(cls, masks: Sequence[RLEMasks]) -> RLEMasks:
        height, width = check_cat(cls, masks)
        parts = [m for m in masks if len(m)] or [masks[0]]
        first = parts[0]
        if all(m._same_transform(first) for m in parts):
            rles = [r for m in parts for r in m._rles]
            return cls._lazy(rles, first._ymap, first._xmap, first._maps)
        # Different source sizes or transforms: bring every part to the common canvas.
        return cls([r for m in parts for r in m.to_rle()], height, width)

    @classmethod
    def empty(cls, height: int, width: int) -> RLEMasks:
        return cls([], height, width)

    def _same_transform(self, other: RLEMasks) -> bool:
        return self._ymap == other._ymap and self._xmap == other._xmap

    @property
    def _identity(self) -> bool:
        return self._ymap.is_identity and self._xmap.is_identity

    def _index_maps(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Source row (column) of each current row (column), -1 for none; None = unchanged."""
        if self._maps is None:
            self._maps = (self._ymap.indices(), self._xmap.indices())
        return self._maps

    def _row_map(self) -> np.ndarray:
        rows = self._index_maps()[0]
        return np.arange(self._ymap.src) if rows is None else rows

    def _col_map(self) -> np.ndarray:
        cols = self._index_maps()[1]
        return np.arange(self._xmap.src) if cols is None else cols

    def _moved(self, ymap: AxisMap, xmap: AxisMap) -> RLEMasks:
        return self._lazy(self._rles, ymap, xmap)

    def resize(self, out_shape: tuple[int, int]) -> RLEMasks:
        out_h, out_w = check_out_shape(out_shape, 'resize')
        return self._moved(self._ymap.resize(out_h), self._xmap.resize(out_w))

    def flip(self, direction: str = 'horizontal') -> RLEMasks:
        check_direction(direction, ('horizontal', 'vertical', 'diagonal'))
        ymap, xmap = self._ymap, self._xmap
        if direction in ('vertical', 'diagonal'):
            ymap = ymap.flip()
        if direction in ('horizontal', 'diagonal'):
            xmap = xmap.flip()
        return self._moved(ymap, xmap)

    def crop(self, bbox: np.ndarray) -> RLEMasks:
        x1, y1, w, h = crop_window(self.height, self.width, bbox)
        return self._moved(self._ymap.shift(-y1, h), self._xmap.shift(-x1, w))

    def pad(self, out_shape: tuple[int, int]) -> RLEMasks:
        out_h, out_w = check_pad(self.height, self.width, out_shape)
        return self._moved(self._ymap.shift(0, out_h), self._xmap.shift(0, out_w))

    def translate(
        self, out_shape: tuple[int, int], offset: float, direction: str = 'horizontal'
    ) -> RLEMasks:
        out_h, out_w = check_out_shape(out_shape, 'translate')
        check_direction(direction, ('horizontal', 'vertical'))
        dy, dx = (0.0, offset) if direction == 'horizontal' else (offset, 0.0)
        return self._moved(self._ymap.shift(dy, out_h), self._xmap.shift(dx, out_w))

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

    def to_rle_masks(self) -> RLEMasks:
        return self._lazy(self._rles, self._ymap, self._xmap, self._maps)

    def _tight_windows(self) -> Iterator[tuple[np.ndarray, int, int] | None]:
        for i in range(len(self)):
            yield self._tight(self._runs(i))

    def to_rle(self) -> list[dict]:
        if self._identity:
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
        if self._identity:
            return _areas(self._rles).astype(np.float32)
        owner, rows, cols = self._shown_pieces()[:3]
        return np.bincount(owner, weights=rows * cols, minlength=len(self)).astype(np.float32)

    def get_bboxes(self) -> np.ndarray:
        boxes = np.zeros((len(self), 4), dtype=np.float32)
        owner, _, _, y0, y1, x0, x1 = self._shown_pieces()
        if len(owner):
            shown, starts = np.unique(owner, return_index=True)  # pieces come in instance order
            boxes[shown] = np.stack(
                [
                    np.minimum.reduceat(x0, starts),
                    np.minimum.reduceat(y0, starts),
                    np.maximum.reduceat(x1, starts),
                    np.maximum.reduceat(y1, starts),
                ],
                axis=1,
            )
        return boxes

    def _shown_pieces(self) -> tuple[np.ndarray, ...]:
        """Where every instance's pixels land on the current canvas, one piece per source column
        run, without decoding: -> (instance, rows, columns, y0, y1, x0, x1) of each piece still
        shown (``rows`` x ``columns`` current pixels in [y0, y1) x [x0, x1)), int64 arrays."""
        height = self._ymap.src
        owner, start, end = foreground_runs(self._rles, height, self._xmap.src)
        # Split the runs (column-major) at column ends: column ``col``, source rows [r0, r1).
        first_col = start // height
        num = (end - 1) // height - first_col + 1
        run = np.repeat(np.arange(len(owner)), num)
        col = first_col[run] + np.arange(len(run)) - np.repeat(np.cumsum(num) - num, num)
        r0 = np.maximum(start[run] - col * height, 0)
        r1 = np.minimum(end[run] - col * height, height)
        rows, y0, y1 = _shown_range(self._row_map(), r0, r1)
        cols, x0, x1 = _shown_range(self._col_map(), col, col + 1)
        keep = (rows > 0) & (cols > 0)
        return owner[run][keep], rows[keep], cols[keep], y0[keep], y1[keep], x0[keep], x1[keep]


def _shown_range(
    index_map: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Current pixels of one axis that show source pixels [lo, hi), for a monotone map of
    current to source pixels (-1 for none) -> (how many, first, last + 1) per interval."""
    current = np.flatnonzero(index_map >= 0)
    source = index_map[current]
    if len(source) > 1 and source[0] > source[-1]:  # flipped: read it backwards
        current, source = current[::-1], source[::-1]
    a, b = np.searchsorted(source, lo), np.searchsorted(source, hi)
    count = b - a
    if len(current) == 0:
        return count, count, count
    ends = current[a.clip(max=len(current) - 1)], current[(b - 1).clip(min=0)]
    return count, np.minimum(*ends), np.maximum(*ends) + 1


def _areas(rles: list[dict]) -> np.ndarray:
    """pycocotools' areas of ``rles`` (C, no parsing in Python), in chunks of 255: pycocotools
    2.0.11 under numpy 2 overflows on lists of 256 or more -> int array [N]."""
    chunks = [mask_utils.area(rles[i : i + 255]) for i in range(0, len(rles), 255)]
    return np.concatenate(chunks) if chunks else np.zeros(0)
