"""COCO RLE helpers: input normalisation and decoding of a sub-window without the full mask.

pycocotools only decodes whole masks (H x W bytes each). A mask-head target or a tight box needs
a few thousand pixels of one instance, so ``Runs`` parses the compressed counts (vectorised) and
paints only the columns asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_utils


def zero_rle(height: int, width: int) -> dict:
    """Compressed RLE of an empty ``height x width`` mask, without allocating it."""
    return mask_utils.frPyObjects(
        {'size': [height, width], 'counts': [height * width]}, height, width
    )


def normalise_rle(rle: Mapping, height: int, width: int, index: int) -> dict:
    """Check one COCO RLE against the canvas -> new dict with compressed ``counts`` bytes."""
    if not isinstance(rle, Mapping) or 'size' not in rle or 'counts' not in rle:
        raise ValueError(
            f'RLEMasks: instance {index} is not a COCO RLE dict with size and counts: {rle!r:.80}'
        )
    size = [int(s) for s in rle['size']]
    if size != [height, width]:
        raise ValueError(
            f'RLEMasks: instance {index} has RLE size {size}, but the masks are '
            f'[height, width] = [{height}, {width}]'
        )
    counts = rle['counts']
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    elif isinstance(counts, (list, tuple, np.ndarray)):
        total = int(np.sum(counts))
        if total != height * width:
            raise ValueError(
                f'RLEMasks: instance {index} has uncompressed counts summing to '
                f'{total}, expected height * width = {height * width}'
            )
        counts = mask_utils.frPyObjects(
            {'size': size, 'counts': [int(c) for c in counts]}, height, width
        )['counts']
    elif not isinstance(counts, bytes):
        raise ValueError(f'RLEMasks: instance {index} has counts of type {type(counts).__name__}')
    return {'size': size, 'counts': counts}


def parse_counts(counts: bytes) -> np.ndarray:
    """Compressed COCO counts (pycocotools' rleToString format) -> int64 run lengths."""
    return parse_counts_many([counts])[0]


def parse_counts_many(counts: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Compressed COCO counts of several RLEs, parsed together -> (int64 run lengths of all of
    them, concatenated; int64 number of runs of each)."""
    num_chars = np.array([len(c) for c in counts], dtype=np.int64)
    chars = np.frombuffer(b''.join(counts), dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(len(counts), dtype=np.int64)
    # Each run length is 5-bit groups, least significant first; bit 0x20 = "more groups follow",
    # bit 0x10 of the last group = sign.
    last = (chars & 0x20) == 0
    last_chars = np.cumsum(num_chars) - 1
    bad = (num_chars > 0) & ~last[last_chars.clip(0)]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f'truncated RLE counts {counts[i][-20:]!r} (instance {i})')
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    group_chars = ends - starts + 1
    shifts = 5 * (np.arange(chars.size) - np.repeat(starts, group_chars))
    values = np.add.reduceat((chars & 0x1F) << shifts, starts)
    negative = (chars[ends] & 0x10) != 0
    values -= negative.astype(np.int64) << (5 * group_chars)
    lengths = np.diff(np.searchsorted(ends, last_chars, side='right'), prepend=0)
    # From the fourth run on, each value is stored relative to the run two places earlier: two
    # running sums per RLE, over runs 1, 3, 5, ... and over runs 2, 4, 6, ...
    k = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    owner = np.repeat(np.arange(len(counts)), lengths)
    for chain in (np.flatnonzero(k % 2 == 1), np.flatnonzero((k % 2 == 0) & (k > 0))):
        if len(chain) == 0:
            continue
        sums = np.cumsum(values[chain])
        first = np.flatnonzero(np.diff(owner[chain], prepend=-1))  # each RLE's first entry
        before = np.where(first > 0, sums[first - 1], 0)
        values[chain] = sums - np.repeat(before, np.diff(first, append=len(chain)))
    return values, lengths


def foreground_runs(
    rles: Sequence[dict], height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground runs of compressed RLEs of ``height x width`` masks, in column-major pixel
    order -> int64 arrays (instance, start, end) with ends exclusive; empty runs left out."""
    values, lengths = parse_counts_many([r['counts'] for r in rles])
    owner = np.repeat(np.arange(len(rles)), lengths)
    totals = np.bincount(owner, weights=values, minlength=len(rles))
    negative = np.bincount(owner, weights=values < 0, minlength=len(rles))
    bad = (totals != height * width) | (negative > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f'RLEMasks: instance {i} has corrupt counts (runs sum to {int(totals[i])}, '
            f'expected {height * width})'
        )
    if len(values) == 0:
        return (np.zeros(0, dtype=np.int64),) * 3
    run_end = np.cumsum(values)
    first = np.cumsum(lengths) - lengths
    offset = np.repeat(np.where(first > 0, run_end[(first - 1).clip(0)], 0), lengths)
    run_end -= offset
    k = np.arange(len(values)) - np.repeat(first, lengths)
    fg = (k % 2 == 1) & (values > 0)  # runs alternate background / foreground
    end = run_end[fg]
    return owner[fg], end - values[fg], end


class Runs:
    """One instance's RLE as run boundaries, for decoding sub-windows and finding its box.

    Args:
        rle: compressed COCO RLE dict of size [H, W].
        index: instance index, for error messages.
    """

    def __init__(self, rle: dict, index: int) -> None:
        self.height, self.width = rle['size']
        counts = parse_counts(rle['counts'])
        if (counts < 0).any() or counts.sum() != self.height * self.width:
            raise ValueError(
                f'RLEMasks: instance {index} has corrupt counts (runs sum to '
                f'{counts.sum()}, expected {self.height * self.width})'
            )
        # Runs alternate background / foreground in column-major order, background first.
        self.bounds = np.concatenate([[0], np.cumsum(counts)])
        self._bbox: tuple[int, int, int, int] | None | bool = False

    def bbox(self) -> tuple[int, int, int, int] | None:
        """Tight source box as (row0, row1, col0, col1), ends exclusive; None when empty."""
        if self._bbox is not False:
            return self._bbox
        n = len(self.bounds) - 1
        starts, ends = self.bounds[1:n:2], self.bounds[2 : n + 1 : 2]
        keep = ends > starts
        starts, ends = starts[keep], ends[keep] - 1  # ends now inclusive
        if len(starts) == 0:
            self._bbox = None
            return None
        h = self.height
        col0, col1 = int(starts[0] // h), int(ends[-1] // h) + 1
        if (starts // h != ends // h).any():
            row0, row1 = 0, h  # a run wraps into the next column, so it covers the bottom and top
        else:
            row0, row1 = int((starts % h).min()), int((ends % h).max()) + 1
        self._bbox = (row0, row1, col0, col1)
        return self._bbox

    def region(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Source pixels [row0:row1, col0:col1] -> uint8 ndarray (a view, do not write to it)."""
        h = self.height
        lengths = np.diff(np.clip(self.bounds, col0 * h, col1 * h))
        values = (np.arange(len(lengths)) & 1).astype(np.uint8)
        strip = np.repeat(values, lengths)  # columns col0..col1-1, each h pixels tall
        return strip.reshape(col1 - col0, h)[:, row0:row1].T


def encode_window(window: np.ndarray, y0: int, x0: int, height: int, width: int) -> dict:
    """Compressed RLE of a ``height x width`` canvas that is empty except ``window`` (uint8
    [h, w]) placed at row ``y0``, column ``x0``; costs O(window), not O(canvas)."""
    cols, rows = np.nonzero(window.T)  # column-major order, as COCO RLE runs
    if len(cols) == 0:
        return zero_rle(height, width)
    flat = (x0 + cols.astype(np.int64)) * height + (y0 + rows)
    gaps = np.flatnonzero(np.diff(flat) != 1)
    starts = np.concatenate([flat[:1], flat[gaps + 1]])
    ends = np.concatenate([flat[gaps] + 1, flat[-1:] + 1])
    bounds = np.stack([starts, ends], axis=1).reshape(-1)
    counts = np.diff(np.concatenate([[0], bounds, [height * width]]))
    if counts[-1] == 0:
        counts = counts[:-1]  # pycocotools ends on the last foreground run
    return mask_utils.frPyObjects(
        {'size': [height, width], 'counts': counts.tolist()}, height, width
    )


def tighten(window: np.ndarray, y0: int, x0: int) -> tuple[np.ndarray, int, int] | None:
    """Shrink a uint8 window at (y0, x0) to its foreground's tight box -> (window, y0, x0), or
    None when it is empty."""
    rows, cols = np.flatnonzero(window.any(axis=1)), np.flatnonzero(window.any(axis=0))
    if len(rows) == 0:
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return window[r0:r1, c0:c1], y0 + int(r0), x0 + int(c0)
