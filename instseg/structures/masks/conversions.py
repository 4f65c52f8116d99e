"""Conversions between mask representations, one instance (or window) at a time.

Polygons -> RLE (pycocotools rasterises), pixel window -> RLE and pixel window -> polygons, all
without a full-size bitmap, and mask-head targets: RoIAlign of pixel windows around RoI boxes.
Pure functions of arrays; the containers build on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import torch
from torchvision.ops import roi_align


def zero_rle(height: int, width: int) -> dict:
    """Compressed RLE of an empty ``height x width`` mask, without allocating it."""
    return mask_utils.frPyObjects(
        {'size': [height, width], 'counts': [height * width]}, height, width
    )


def polygons_to_rle(polys: Sequence[np.ndarray], height: int, width: int) -> dict:
    """Rasterise one instance's flat polygons (their union) -> compressed COCO RLE."""
    if len(polys) == 0:
        return zero_rle(height, width)
    return mask_utils.merge(mask_utils.frPyObjects(list(polys), height, width))


def window_to_rle(window: np.ndarray, y0: int, x0: int, height: int, width: int) -> dict:
    """Compressed RLE of a ``height x width`` canvas that is empty except ``window`` (uint8
    [h, w]) placed at row ``y0``, column ``x0``; costs O(window), not O(canvas)."""
    cols, rows = np.nonzero(window.T)  # column-major order, as COCO RLE runs
    if len(cols) == 0:
        return zero_rle(height, width)
    flat = (x0 + cols.astype(np.int64)) * height + (y0 + rows)
    gaps = np.flatnonzero(np.diff(flat) != 1)
    starts = np.concatenate([flat[:1], flat[gaps + 1]])
    ends = np.concatenate([flat[gaps] + 1, flat[-1:] + 1])
    counts = np.diff(
        np.concatenate([[0], np.stack([starts, ends], 1).reshape(-1), [height * width]])
    )
    if counts[-1] == 0:
        counts = counts[:-1]  # pycocotools ends on the last foreground run
    return mask_utils.frPyObjects(
        {'size': [height, width], 'counts': counts.tolist()}, height, width
    )


def window_to_polygons(window: np.ndarray, y0: int, x0: int) -> list[np.ndarray]:
    """Outlines of the connected regions of a uint8 window at (y0, x0) -> flat polygons.

    Each pixel is split into 2 x 2 half-pixels before tracing (8-connected, outer outlines), so
    the outline runs through half-pixel centres: a quarter pixel inside the region's edge, with
    every region pixel's centre inside and every other pixel's centre outside. Holes are filled
    (COCO polygons are a union).
    """
    fine = np.pad(np.repeat(np.repeat(window.astype(np.uint8), 2, 0), 2, 1), 1)
    contours, _ = cv2.findContours(fine, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # Half-pixel index k (after the 1-wide pad) has its centre at (k - 1 + 0.5) / 2; a straight
    # run (under 3 points) cannot occur, as regions are at least 2 x 2 half-pixels.
    return [((c.reshape(-1, 2) - 0.5) / 2 + [x0, y0]).reshape(-1) for c in contours if len(c) >= 3]


# cut(instance, y0, y1, x0, x1) -> uint8 ndarray[y1 - y0, x1 - x0] of that instance's pixels.
WindowCutter = Callable[[int, int, int, int, int], np.ndarray]


def roi_targets(
    cut: WindowCutter,
    boxes: np.ndarray,
    inds: np.ndarray,
    out_shape: tuple[int, int],
    height: int,
    width: int,
    device: torch.device | str,
    max_batch_pixels: int = 1 << 22,
) -> torch.Tensor:
    """Mask-head targets: RoIAlign (aligned=True, adaptive sampling) of instance ``inds[k]`` in
    ``boxes[k]`` (float64[K, 4] xyxy on a ``height x width`` canvas), binarised at 0.5
    -> float32 Tensor[K, h, w] on ``device``.

    RoIAlign reads only pixels within one pixel of its box, plus the canvas edge rules (samples
    up to one pixel outside clamp to the edge, further ones are zero). So a window of the box
    grown by two pixels and clipped to the canvas gives exactly the full-canvas result, without
    an [N, H, W] float stack. Windows are zero-padded into batches of at most
    ``max_batch_pixels`` pixels, one RoIAlign call per batch; a window ending at the canvas'
    bottom (right) edge is aligned to the bottom (right) of its slot, where the slot edge plays
    the canvas edge.
    """
    out_h, out_w = int(out_shape[0]), int(out_shape[1])
    soft = torch.zeros((len(boxes), out_h, out_w), dtype=torch.float32)
    x0 = np.clip(np.floor(boxes[:, 0]) - 2, 0, width).astype(np.int64)
    y0 = np.clip(np.floor(boxes[:, 1]) - 2, 0, height).astype(np.int64)
    x1 = np.clip(np.ceil(boxes[:, 2]) + 2, 0, width).astype(np.int64)
    y1 = np.clip(np.ceil(boxes[:, 3]) + 2, 0, height).astype(np.int64)
    win_h, win_w = y1 - y0, x1 - x0
    # Boxes over a pixel outside the canvas read nothing but zeros: their targets stay 0.
    todo = np.flatnonzero((win_h > 0) & (win_w > 0))
    todo = todo[np.argsort(win_h[todo] * win_w[todo], kind='stable')]
    while len(todo):
        # Grow the batch while its padded size stays in budget (always at least one window).
        slot_h, slot_w = np.maximum.accumulate(win_h[todo]), np.maximum.accumulate(win_w[todo])
        fits = np.arange(1, len(todo) + 1) * slot_h * slot_w <= max_batch_pixels
        count = max(int(np.argmin(fits)) if not fits.all() else len(todo), 1)
        batch, todo = todo[:count], todo[count:]
        sh, sw = int(slot_h[count - 1]), int(slot_w[count - 1])
        pixels = np.zeros((count, 1, sh, sw), dtype=np.float32)
        rois = np.zeros((count, 5), dtype=np.float32)
        for j, k in enumerate(batch.tolist()):
            top = sh - win_h[k] if y1[k] == height and y0[k] > 0 else 0
            left = sw - win_w[k] if x1[k] == width and x0[k] > 0 else 0
            pixels[j, 0, top : top + win_h[k], left : left + win_w[k]] = cut(
                int(inds[k]), int(y0[k]), int(y1[k]), int(x0[k]), int(x1[k])
            )
            # The shift to the slot is an integer, so the float32 box stays exact.
            rois[j] = (j, *(boxes[k] - [x0[k] - left, y0[k] - top] * 2))
        with torch.no_grad():
            soft[torch.from_numpy(batch)] = roi_align(
                torch.from_numpy(pixels), torch.from_numpy(rois), (out_h, out_w), 1.0, 0, True
            )[:, 0]
    return (soft >= 0.5).float().to(device)
