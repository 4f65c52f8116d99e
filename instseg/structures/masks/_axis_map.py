"""One axis of a lazy axis-aligned transform, kept as an exact affine map from the source.

Resize, flip, crop, pad and translate each map a coordinate as ``x' = a * x + b`` per axis and
cut the content to the new canvas. ``AxisMap`` composes them exactly (rational ``a`` and ``b``)
and samples the source once, at the end: the current pixel ``j`` shows source pixel
``floor(u)`` with ``u = (j + 1/2 - b) / a`` (its centre mapped back), or nothing when ``u`` lies
outside every canvas the chain passed through. One resampling means a chain of resizes is as
sharp as a single resize to the final size, so a mask stays within half a pixel of its box
however many scales an augmentation pipeline goes through (composing per-step nearest maps
would add half a pixel of the then-current scale at each step).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from numbers import Real

import numpy as np

_INT64_SAFE = 1 << 62


def _exact(value: Real) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


@dataclass(frozen=True)
class AxisMap:
    """Current coordinate ``x = scale * u + offset`` of source coordinate ``u`` on one axis.

    Args:
        src: source length in pixels.
        size: current length in pixels.
        scale, offset: the affine map (exact rationals; ``scale`` < 0 after a flip).
        lo, hi: the source interval ``[lo, hi)`` still on the canvas after every crop so far.
    """

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
    def is_identity(self) -> bool:
        return (
            self.size == self.src
            and self.scale == 1
            and self.offset == 0
            and self.lo <= 0
            and self.hi >= self.src
        )

    def then(self, scale: Real, offset: Real, size: int) -> AxisMap:
        """Follow this map by ``x' = scale * x + offset`` onto a canvas of ``size`` pixels."""
        scale, offset = _exact(scale), _exact(offset)
        if scale == 0:
            raise ValueError('AxisMap: a step cannot scale an axis to zero')
        new_scale = self.scale * scale
        new_offset = self.offset * scale + offset
        # The new canvas [0, size) seen from the source; content beyond it is gone for good.
        ends = sorted([(0 - new_offset) / new_scale, (size - new_offset) / new_scale])
        lo, hi = max(self.lo, ends[0]), min(self.hi, ends[1])
        return AxisMap(self.src, int(size), new_scale, new_offset, lo, hi)

    def resize(self, size: int) -> AxisMap:
        """Stretch the current ``self.size`` pixels to ``size``."""
        if self.size == 0 or int(size) == 0:
            # Nothing can be shown any more: keep the map, close the window.
            return AxisMap(self.src, int(size), self.scale, self.offset, self.lo, self.lo)
        return self.then(Fraction(int(size), self.size), 0, size)

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
        bound = max(abs((2 * self.size + 1) * od) + abs(2 * on), 1) * sd
        big = max(bound, abs(den)) * max(
            self.lo.denominator, self.hi.denominator, abs(self.lo.numerator), abs(self.hi.numerator)
        )
        dtype = np.int64 if big < _INT64_SAFE else object
        j = np.arange(self.size, dtype=np.int64).astype(dtype)
        num = ((2 * j + 1) * od - 2 * on) * sd
        if den < 0:
            num, den = -num, -den
        idx = num // den
        # lo <= u < hi, compared as integers: num * q >= p * den for a bound p / q.
        visible = (num * self.lo.denominator >= self.lo.numerator * den) & (
            num * self.hi.denominator < self.hi.numerator * den
        )
        visible &= (idx >= 0) & (idx < self.src)
        return np.where(visible, idx, -1).astype(np.int64)
