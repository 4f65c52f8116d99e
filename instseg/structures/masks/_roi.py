"""Mask-head targets from pixel masks: RoIAlign on a small window around each box.

Running ``roi_align`` on the whole ``[N, H, W]`` stack would convert every instance to float at
full size. RoIAlign (aligned=True) reads only the pixels within one pixel of its box, plus the
canvas edge rules (samples up to one pixel outside the canvas clamp to the edge, further ones are
zero). A window of the box grown by two pixels and clipped to the canvas therefore gives exactly
the full-canvas result: where the window stops short of the canvas edge no sample reaches it,
and where it is clipped its edge is the canvas edge.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torchvision.ops import roi_align

# cut(instance, y0, y1, x0, x1) -> uint8 ndarray[y1 - y0, x1 - x0] of that instance's pixels.
WindowCutter = Callable[[int, int, int, int, int], np.ndarray]


def roi_windows(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel windows read by RoIAlign for float boxes[K, 4] -> int64[K, 4] (x0, y0, x1, y1)."""
    x0 = np.clip(np.floor(boxes[:, 0]) - 2, 0, width)
    y0 = np.clip(np.floor(boxes[:, 1]) - 2, 0, height)
    x1 = np.clip(np.ceil(boxes[:, 2]) + 2, 0, width)
    y1 = np.clip(np.ceil(boxes[:, 3]) + 2, 0, height)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


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
    """RoIAlign (aligned=True, adaptive sampling) of instance ``inds[k]`` in ``boxes[k]``
    (float64[K, 4] xyxy), binarised at 0.5 -> float32 Tensor[K, h, w] on ``device``.

    Windows are zero-padded into batches of at most ``max_batch_pixels`` pixels, one RoIAlign
    call per batch. A window that ends at the canvas' bottom (right) edge is aligned to the
    bottom (right) of its slot, so the slot edge plays the canvas edge for RoIAlign.
    """
    out_h, out_w = int(out_shape[0]), int(out_shape[1])
    soft = torch.zeros((len(boxes), out_h, out_w), dtype=torch.float32)
    windows = roi_windows(boxes, height, width)
    x0, y0, x1, y1 = windows.T
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
