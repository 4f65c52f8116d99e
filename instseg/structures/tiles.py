"""Cutting an image into overlapping tiles: the windows shared by tiled training and inference."""

from __future__ import annotations

import numpy as np


def as_tile_size(
    size: int | tuple[int, int] | list[int], name: str = 'tile size'
) -> tuple[int, int]:
    """``size`` (one int, or (h, w)) as a checked (h, w) of positive ints."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in pair):
        raise ValueError(f'{name} must be a positive int or (height, width), got {size!r}')
    return int(pair[0]), int(pair[1])


def _starts(length: int, size: int, stride: int) -> np.ndarray:
    if length <= size:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - size, stride, dtype=np.int64)
    # The last tile ends on the image edge instead of running past it.
    return np.append(starts, length - size)


def tile_windows(
    height: int, width: int, size: int | tuple[int, int], overlap: int = 0
) -> np.ndarray:
    """Windows that cover a ``height x width`` image -> int64 [T, 4] (x0, y0, x1, y1), ends
    exclusive, row by row.

    Neighbouring tiles share at least ``overlap`` pixels; the last tile of a row or column is
    moved back to end on the image edge (so it may overlap more), and an image smaller than a
    tile is one window of the image's size.
    """
    tile_h, tile_w = as_tile_size(size)
    if height < 1 or width < 1:
        raise ValueError(f'cannot tile an image of size {height}x{width}')
    if not 0 <= overlap < min(tile_h, tile_w):
        raise ValueError(
            f'tile overlap must be in [0, {min(tile_h, tile_w)}) for tiles of '
            f'{tile_h}x{tile_w}, got {overlap}'
        )
    ys = _starts(height, tile_h, tile_h - overlap)
    xs = _starts(width, tile_w, tile_w - overlap)
    y0, x0 = np.meshgrid(ys, xs, indexing='ij')
    x0, y0 = x0.reshape(-1), y0.reshape(-1)
    x1 = np.minimum(x0 + tile_w, width)
    y1 = np.minimum(y0 + tile_h, height)
    return np.stack([x0, y0, x1, y1], axis=1)
