"""COCO RLE counts: input normalisation, parsing, and decoding of a sub-window.

pycocotools only decodes whole masks (H x W bytes each). A mask-head target or a tight box needs
a few thousand pixels of one instance, so :class:`RLESource` parses the compressed counts of
all instances at once (vectorised) and paints only the pixels asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import pycocotools.mask as mask_utils


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


class RLESource:
    """N compressed COCO RLEs of one ``height x width`` canvas. Their foreground runs are parsed
    the first time they are needed, all at once: ``runs`` = (instance, start, end), int64, ends
    exclusive, every non-empty run in column-major pixel order, instance after instance."""

    def __init__(self, rles: list[dict], height: int, width: int) -> None:
        self.rles, self.height, self.width = rles, height, width

    @cached_property
    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values, lengths = parse_counts_many([r['counts'] for r in self.rles])
        owner = np.repeat(np.arange(len(self.rles)), lengths)
        expected, n = self.height * self.width, len(self.rles)
        totals = np.bincount(owner, weights=values, minlength=n)
        bad = (totals != expected) | (np.bincount(owner, values < 0, n) > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f'RLEMasks: instance {i} has corrupt counts (runs sum to {int(totals[i])}, '
                f'expected {expected})'
            )
        first = np.cumsum(lengths) - lengths
        run_end = np.cumsum(values)
        run_end -= np.repeat(np.concatenate([[0], run_end])[first], lengths)  # per instance
        # Runs alternate background / foreground, background first.
        fg = ((np.arange(len(values)) - np.repeat(first, lengths)) % 2 == 1) & (values > 0)
        return owner[fg], run_end[fg] - values[fg], run_end[fg]

    @cached_property
    def _first_run(self) -> np.ndarray:
        return np.searchsorted(self.runs[0], np.arange(len(self.rles) + 1))

    def region(self, i: int, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Source pixels [row0:row1, col0:col1] of instance ``i`` -> uint8 ndarray (a view)."""
        lo, hi = col0 * self.height, col1 * self.height
        a, b = self._first_run[i], self._first_run[i + 1]
        start, end = self.runs[1][a:b], self.runs[2][a:b]
        # Only the runs that reach into columns col0..col1-1, clipped to them.
        keep = slice(np.searchsorted(end, lo, 'right'), np.searchsorted(start, hi))
        bounds = np.stack([start[keep], end[keep]], 1).reshape(-1).clip(lo, hi) - lo
        lengths = np.diff(bounds, prepend=0, append=hi - lo)
        strip = np.repeat((np.arange(len(lengths)) & 1).astype(np.uint8), lengths)
        return strip.reshape(col1 - col0, self.height)[:, row0:row1].T
