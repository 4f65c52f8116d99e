"""Instance masks as COCO RLEs with a lazy axis-aligned transform.

The RLEs stay at their source size; resize, flip, crop, pad and translate only compose the
container's exact :class:`CanvasMap` (see ``geometry``), so they cost O(1) whatever the number of
instances, and the source is resampled once however long the chain. Pixels are produced one
instance at a time, and only inside the instance's box or the window asked for, when
``crop_and_resize``, ``to_ndarray`` or ``to_rle`` need them; ``rotate`` re-encodes each
instance. ``areas`` and ``get_bboxes`` decode nothing: they follow every instance's runs,
column by column, through the canvas map, all instances at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_utils

from .base import IndexLike, PixelMasks, Window, as_indices, check_cat, paint_windows
from .conversions import window_to_rle, zero_rle
from .geometry import CanvasMap
from .polygon import PolygonMasks
from .rle_runs import RLESource, normalise_rle


class RLEMasks(PixelMasks):
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
        rles = [normalise_rle(r, self.height, self.width, i) for i, r in enumerate(rles)]
        self._source = RLESource(rles, self.height, self.width)
        self._map = CanvasMap.identity(self.height, self.width)

    @classmethod
    def _lazy(cls, source: RLESource, canvas_map: CanvasMap) -> RLEMasks:
        obj = cls.__new__(cls)
        obj.height, obj.width = canvas_map.shape
        obj._source, obj._map = source, canvas_map
        return obj

    @classmethod
    def from_polygons(cls, polygon_masks: PolygonMasks) -> RLEMasks:
        """Rasterise each instance of ``polygon_masks`` straight to RLE (no full-size bitmap)."""
        return cls(polygon_masks.to_rle(), polygon_masks.height, polygon_masks.width)

    def __len__(self) -> int:
        return len(self._source.rles)

    def __getitem__(self, index: IndexLike) -> RLEMasks:
        idx, rles = as_indices(index, len(self)), self._source.rles
        rles = rles[idx] if isinstance(idx, slice) else [rles[i] for i in idx]
        return self._lazy(RLESource(rles, self._source.height, self._source.width), self._map)

    @classmethod
    def cat(cls, masks: Sequence[RLEMasks]) -> RLEMasks:
        height, width = check_cat(cls, masks)
        parts = [m for m in masks if len(m)] or [masks[0]]
        if all(m._map == parts[0]._map for m in parts):
            source = parts[0]._source
            rles = [r for m in parts for r in m._source.rles]
            return cls._lazy(RLESource(rles, source.height, source.width), parts[0]._map)
        # Different source sizes or transforms: bring every part to the common canvas.
        return cls([r for m in parts for r in m.to_rle()], height, width)

    @property
    def _canvas_map(self) -> CanvasMap:
        return self._map

    def _moved(self, canvas_map: CanvasMap) -> RLEMasks:
        return self._lazy(self._source, canvas_map)

    def _window(self, i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Decodes only the source pixels that land in the window."""
        out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        rows, cols = self._map.lookup
        rows, cols = rows[y0:y1], cols[x0:x1]
        keep_r, keep_c = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
        if len(keep_r) and len(keep_c):
            src_r, src_c = rows[keep_r], cols[keep_c]
            r0, c0 = int(src_r.min()), int(src_c.min())
            region = self._source.region(i, r0, int(src_r.max()) + 1, c0, int(src_c.max()) + 1)
            out[np.ix_(keep_r, keep_c)] = region[np.ix_(src_r - r0, src_c - c0)]
        return out

    @classmethod
    def _from_windows(cls, windows: Sequence[Window | None], height: int, width: int):
        rles = [zero_rle(height, width) if w is None else window_to_rle(*w, height, width)
                for w in windows]  # fmt: skip
        return cls(rles, height, width)

    def to_ndarray(self) -> np.ndarray:
        return paint_windows(self._tight_windows(), self.height, self.width)

    def to_rle_masks(self) -> RLEMasks:
        return self[:]

    def to_rle(self) -> list[dict]:
        if self._map.is_identity:
            return [{'size': list(r['size']), 'counts': r['counts']} for r in self._source.rles]
        return self._from_windows(self._tight_windows(), self.height, self.width)._source.rles

    @property
    def areas(self) -> np.ndarray:
        if self._map.is_identity:
            return _areas(self._source.rles).astype(np.float32)
        owner, rows, cols = self._shown_pieces()[:3]
        return np.bincount(owner, weights=rows * cols, minlength=len(self)).astype(np.float32)

    def get_bboxes(self) -> np.ndarray:
        boxes = np.zeros((len(self), 4), dtype=np.float32)
        owner, _, _, y0, y1, x0, x1 = self._shown_pieces()
        if len(owner):
            shown, starts = np.unique(owner, return_index=True)  # pieces come in instance order
            low, high = np.minimum.reduceat, np.maximum.reduceat
            boxes[shown] = np.stack(
                [low(x0, starts), low(y0, starts), high(x1, starts), high(y1, starts)], 1
            )
        return boxes

    def _shown_pieces(self) -> tuple[np.ndarray, ...]:
        """Where every instance's pixels land on the current canvas, one piece per source column
        run, without decoding: -> (instance, rows, columns, y0, y1, x0, x1) of each piece still
        shown (``rows`` x ``columns`` current pixels in [y0, y1) x [x0, x1)), int64 arrays."""
        height = self._source.height
        owner, start, end = self._source.runs
        # Split the runs (column-major) at column ends: column ``col``, source rows [r0, r1).
        first_col = start // height
        num = (end - 1) // height - first_col + 1
        run = np.repeat(np.arange(len(owner)), num)
        col = first_col[run] + np.arange(len(run)) - np.repeat(np.cumsum(num) - num, num)
        r0 = np.maximum(start[run] - col * height, 0)
        r1 = np.minimum(end[run] - col * height, height)
        row_map, col_map = self._map.lookup
        rows, y0, y1 = _shown_range(row_map, r0, r1)
        cols, x0, x1 = _shown_range(col_map, col, col + 1)
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
