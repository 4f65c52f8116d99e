"""Mask geometry: one exact map from current pixels to source pixels, used by every container.

Resize, flip, crop, pad and translate move a coordinate as ``x' = a * x + b`` on each axis and
cut the content to the new canvas. :class:`CanvasMap` composes such steps exactly (rational
``a`` and ``b``) and keeps the source window still on the canvas. Current pixel ``j`` shows
source pixel ``floor(u)``, ``u = (j + 1/2 - b) / a`` (its centre mapped back), or nothing when
``u`` left the window. ``BitmapMasks`` gathers through the map of each step, ``PolygonMasks``
moves its points by it, and ``RLEMasks`` composes every step and samples its source once, so a
chain of resizes is as sharp as one resize to the final size. Rotation is the one warp that is
not axis-aligned: ``rotate_window`` warps one instance's pixels with OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from numbers import Real

import cv2
import numpy as np

_INT64_SAFE = 1 << 62


def check_out_shape(out_shape: Sequence[int], op: str) -> tuple[int, int]:
    """Validate an ``(h, w)`` canvas size -> tuple of two ints."""
    if len(out_shape) != 2 or any(int(s) != s or s < 0 for s in out_shape):
        raise ValueError(
            f'{op}: out_shape must be (height, width) of non-negative ints, got {out_shape!r}'
        )
    return int(out_shape[0]), int(out_shape[1])


def check_direction(direction: str, allowed: Sequence[str]) -> None:
    """Raise a ValueError naming ``direction`` unless it is one of ``allowed``."""
    if direction not in allowed:
        raise ValueError(f'direction must be one of {tuple(allowed)}, got {direction!r}')


@dataclass(frozen=True)
class AxisMap:
    """Current coordinate ``x = scale * u + offset`` of source coordinate ``u`` on one axis of
    ``src`` pixels, now ``size`` pixels long (exact rationals; ``scale`` < 0 after a flip);
    ``[lo, hi)`` is the source interval still on the canvas after every step so far."""

    src: int
    size: int
    scale: Fraction
    offset: Fraction
    lo: Fraction
    hi: Fraction

    @classmethod
    def identity(cls, length: int) -> AxisMap:
        """The untouched axis of ``length`` pixels."""
        return cls(length, length, Fraction(1), Fraction(0), Fraction(0), Fraction(length))

    @property
    def cuts(self) -> bool:
        """Whether part of the source left the canvas."""
        return self.lo > 0 or self.hi < self.src

    @property
    def is_identity(self) -> bool:
        return self.size == self.src and self.scale == 1 and self.offset == 0 and not self.cuts

    def then(self, scale: Real, offset: Real, size: int) -> AxisMap:
        """Follow this map by ``x' = scale * x + offset`` onto a canvas of ``size`` pixels."""
        scale, offset = Fraction(scale), Fraction(offset)
        new_scale, new_offset = self.scale * scale, self.offset * scale + offset
        # The new canvas [0, size) seen from the source; content beyond it is gone for good.
        ends = sorted([-new_offset / new_scale, (size - new_offset) / new_scale])
        lo, hi = max(self.lo, ends[0]), min(self.hi, ends[1])
        return AxisMap(self.src, int(size), new_scale, new_offset, lo, hi)

    def resize(self, size: int) -> AxisMap:
        """Stretch the current ``self.size`` pixels to ``size``."""
        if self.size == 0 or size == 0:  # nothing can be shown any more: close the window
            return AxisMap(self.src, size, self.scale, self.offset, self.lo, self.lo)
        return self.then(Fraction(size, self.size), 0, size)

    def flip(self) -> AxisMap:
        """Mirror the axis on its canvas."""
        return self.then(-1, self.size, self.size)

    def shift(self, offset: Real, size: int) -> AxisMap:
        """Move the content by ``offset`` pixels onto a canvas of ``size`` (crop: -x1; pad: 0)."""
        return self.then(1, offset, size)

    def indices(self) -> np.ndarray | None:
        """Source pixel shown by each current pixel (-1 for none) -> int64[size]; None when the
        map is the identity."""
        if self.is_identity:
            return None
        # u_j = (j + 1/2 - offset) / scale = num_j / den with integers, so floor() is exact.
        sn, sd = self.scale.numerator, self.scale.denominator
        on, od = self.offset.numerator, self.offset.denominator
        den = 2 * od * sn
        bounds = (self.lo.numerator, self.lo.denominator, self.hi.numerator, self.hi.denominator)
        big = max(abs((2 * self.size + 1) * od) + abs(2 * on), abs(den), 1) * sd
        dtype = np.int64 if big * max(abs(b) for b in bounds) < _INT64_SAFE else object
        num = ((2 * np.arange(self.size, dtype=np.int64).astype(dtype) + 1) * od - 2 * on) * sd
        if den < 0:
            num, den = -num, -den
        idx = num // den
        # lo <= u < hi, compared as integers: num * q >= p * den for a bound p / q.
        visible = (num * bounds[1] >= bounds[0] * den) & (num * bounds[3] < bounds[2] * den)
        visible &= (idx >= 0) & (idx < self.src)
        return np.where(visible, idx, -1).astype(np.int64)


@dataclass(frozen=True)
class CanvasMap:
    """An axis-aligned transform of a source canvas: ``y`` maps rows, ``x`` maps columns."""

    y: AxisMap
    x: AxisMap

    @classmethod
    def identity(cls, height: int, width: int) -> CanvasMap:
        return cls(AxisMap.identity(height), AxisMap.identity(width))

    @property
    def shape(self) -> tuple[int, int]:
        """Current canvas (height, width)."""
        return self.y.size, self.x.size

    @property
    def is_identity(self) -> bool:
        return self.y.is_identity and self.x.is_identity

    def resize(self, out_shape: tuple[int, int]) -> CanvasMap:
        """Scale the canvas to ``out_shape`` (h, w)."""
        out_h, out_w = check_out_shape(out_shape, 'resize')
        return CanvasMap(self.y.resize(out_h), self.x.resize(out_w))

    def flip(self, direction: str) -> CanvasMap:
        """Mirror 'horizontal' (columns), 'vertical' (rows) or 'diagonal' (both)."""
        check_direction(direction, ('horizontal', 'vertical', 'diagonal'))
        y = self.y if direction == 'horizontal' else self.y.flip()
        return CanvasMap(y, self.x if direction == 'vertical' else self.x.flip())

    def crop(self, bbox: np.ndarray) -> CanvasMap:
        """Cut the window int [x1, y1, x2, y2], clipped to the canvas; a window outside it keeps
        a one-pixel (empty) canvas, as in mmdetection."""
        box = np.asarray(bbox)
        if box.shape != (4,) or not np.issubdtype(box.dtype, np.number):
            raise ValueError(f'crop bbox must be an int array [x1, y1, x2, y2], got {bbox!r}')
        x1, x2 = np.clip(box[0::2].astype(np.int64), 0, self.x.size).tolist()
        y1, y2 = np.clip(box[1::2].astype(np.int64), 0, self.y.size).tolist()
        return CanvasMap(self.y.shift(-y1, max(y2 - y1, 1)), self.x.shift(-x1, max(x2 - x1, 1)))

    def pad(self, out_shape: tuple[int, int]) -> CanvasMap:
        """Grow the canvas to ``out_shape`` with empty rows at the bottom, columns at the right."""
        out_h, out_w = check_out_shape(out_shape, 'pad')
        if out_h < self.y.size or out_w < self.x.size:
            raise ValueError(
                f'pad: out_shape {(out_h, out_w)} is smaller than the masks {self.shape}'
            )
        return CanvasMap(self.y.shift(0, out_h), self.x.shift(0, out_w))

    def translate(self, out_shape: tuple[int, int], offset: float, direction: str) -> CanvasMap:
        """Shift by ``offset`` pixels along x ('horizontal') or y ('vertical') onto a new
        ``out_shape`` canvas anchored at the top-left."""
        out_h, out_w = check_out_shape(out_shape, 'translate')
        check_direction(direction, ('horizontal', 'vertical'))
        dy, dx = (0.0, offset) if direction == 'horizontal' else (offset, 0.0)
        return CanvasMap(self.y.shift(dy, out_h), self.x.shift(dx, out_w))

    @cached_property
    def indices(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(rows, cols): the source row (column) each current row (column) shows, -1 for none,
        None for an untouched axis."""
        return self.y.indices(), self.x.indices()

    @cached_property
    def lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """``indices`` with an untouched axis spelled out as ``arange``."""
        rows, cols = self.indices
        return (np.arange(self.y.src) if rows is None else rows,
                np.arange(self.x.src) if cols is None else cols)  # fmt: skip


def rotation_matrix(
    height: int, width: int, angle: float, center: tuple[float, float] | None, scale: float
) -> np.ndarray:
    """2x3 float64 affine matrix of cv2.getRotationMatrix2D in pixel-index coordinates."""
    if center is None:
        center = ((width - 1) * 0.5, (height - 1) * 0.5)
    return cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle), float(scale))


def rotate_window(
    window: np.ndarray, y0: int, x0: int, matrix: np.ndarray, out_h: int, out_w: int
) -> tuple[np.ndarray, int, int] | None:
    """Warp one instance's uint8 pixels ``window`` (at row y0, column x0) by the 2x3 ``matrix``
    with nearest sampling, onto the part of an ``out_h x out_w`` canvas it can reach
    -> (warped window, its y0, its x0), or None when it lands outside."""
    h, w = window.shape
    # Pixel squares' corners: a destination pixel samples its nearest source pixel centre.
    corners = np.array([[x0, y0], [x0 + w, y0], [x0, y0 + h], [x0 + w, y0 + h]]) - 0.5
    dst = corners @ matrix[:, :2].T + matrix[:, 2]
    dx0, dy0 = np.clip(np.floor(dst.min(axis=0)).astype(int) - 1, 0, [out_w, out_h])
    dx1, dy1 = np.clip(np.ceil(dst.max(axis=0)).astype(int) + 2, 0, [out_w, out_h])
    if dx1 <= dx0 or dy1 <= dy0:
        return None
    local = matrix.copy()
    local[:, 2] += matrix[:, :2] @ [x0, y0] - [dx0, dy0]
    size = (int(dx1 - dx0), int(dy1 - dy0))
    warped = cv2.warpAffine(np.ascontiguousarray(window), local, size, flags=cv2.INTER_NEAREST)
    return warped, int(dy0), int(dx0)
