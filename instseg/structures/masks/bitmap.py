"""Instance masks as a dense uint8 array [N, H, W]."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import torch

from ._index_maps import IndexMappedMasks, gather
from ._roi import roi_targets
from .base import (
    IndexLike,
    as_indices,
    as_roi_inputs,
    check_cat,
    check_out_shape,
    rotation_matrix,
)


class BitmapMasks(IndexMappedMasks):
    """N binary masks stored densely.

    Args:
        masks: uint8/bool ndarray[N, H, W] (or a list of [H, W] arrays); non-zero is foreground.
        height: canvas height H.
        width: canvas width W.
    """

    def __init__(self, masks: np.ndarray | Sequence[np.ndarray], height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        if isinstance(masks, (list, tuple)):
            masks = np.stack(masks) if len(masks) else np.zeros((0, height, width), np.uint8)
        masks = np.asarray(masks)
        if masks.size == 0 and masks.ndim != 3:
            masks = masks.reshape(0, self.height, self.width)
        if masks.ndim != 3 or masks.shape[1:] != (self.height, self.width):
            raise ValueError(
                f'BitmapMasks: masks of shape {masks.shape} do not match '
                f'[N, height={self.height}, width={self.width}]'
            )
        if masks.dtype == np.bool_:
            masks = masks.view(np.uint8)
        elif not np.issubdtype(masks.dtype, np.integer):
            raise ValueError(f'BitmapMasks: masks must be uint8 or bool, got {masks.dtype}')
        elif masks.dtype != np.uint8 or (masks.size and masks.max() > 1):
            # 0/255 masks read from image files: keep the 0/1 contract the targets rely on.
            masks = (masks != 0).view(np.uint8)
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: IndexLike) -> BitmapMasks:
        return BitmapMasks(self.masks[as_indices(index, len(self))], self.height, self.width)

    @classmethod
    def cat(cls, masks: Sequence[BitmapMasks]) -> BitmapMasks:
        height, width = check_cat(cls, masks)
        return cls(np.concatenate([m.masks for m in masks]), height, width)

    @classmethod
    def empty(cls, height: int, width: int) -> BitmapMasks:
        return cls(np.zeros((0, height, width), dtype=np.uint8), height, width)

    def _remap(self, maps: tuple[np.ndarray, np.ndarray]) -> BitmapMasks:
        rows, cols = maps
        return BitmapMasks(gather(self.masks, rows, cols), len(rows), len(cols))

    def rotate(
        self,
        out_shape: tuple[int, int],
        angle: float,
        center: tuple[float, float] | None = None,
        scale: float = 1.0,
    ) -> BitmapMasks:
        out_h, out_w = check_out_shape(out_shape, 'rotate')
        matrix = rotation_matrix(self.height, self.width, angle, center, scale)
        out = np.zeros((len(self), out_h, out_w), dtype=np.uint8)
        # Warp each instance's tight box only: the same windows RLEMasks uses, so the two agree.
        for i, (x1, y1, x2, y2) in enumerate(self.get_bboxes().astype(int).tolist()):
            if x2 <= x1:
                continue
            moved = rotate_window(self.masks[i, y1:y2, x1:x2], y1, x1, matrix, out_h, out_w)
            if moved is not None:
                warped, top, left = moved
                out[i, top : top + warped.shape[0], left : left + warped.shape[1]] = warped
        return BitmapMasks(out, out_h, out_w)

    def crop_and_resize(
        self,
        bboxes: torch.Tensor,
        out_shape: tuple[int, int],
        inds: torch.Tensor,
        device: torch.device | str = 'cpu',
    ) -> torch.Tensor:
        boxes, idx = as_roi_inputs(bboxes, inds, len(self))

        def cut(i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            return self.masks[i, y0:y1, x0:x1]

        return roi_targets(cut, boxes, idx, out_shape, self.height, self.width, device)

    def to_ndarray(self) -> np.ndarray:
        return self.masks.copy()

    def to_bitmap(self) -> BitmapMasks:
        return BitmapMasks(self.masks.copy(), self.height, self.width)

    def _tight_windows(self) -> Iterator[tuple[np.ndarray, int, int] | None]:
        for i, (x1, y1, x2, y2) in enumerate(self.get_bboxes().astype(np.int64).tolist()):
            yield (self.masks[i, y1:y2, x1:x2], y1, x1) if x2 > x1 else None

    def to_rle(self) -> list[dict]:
        return [mask_utils.encode(np.asfortranarray(mask)) for mask in self.masks]

    @property
    def areas(self) -> np.ndarray:
        return self.masks.sum(axis=(1, 2), dtype=np.int64).astype(np.float32)

    def get_bboxes(self) -> np.ndarray:
        return tight_boxes(self.masks.any(axis=2), self.masks.any(axis=1))


def rotate_window(
    window: np.ndarray, y0: int, x0: int, matrix: np.ndarray, out_h: int, out_w: int
) -> tuple[np.ndarray, int, int] | None:
    """Warp one instance's uint8 pixels ``window`` (at row y0, column x0) by the 2x3 ``matrix``
    with nearest sampling, onto the part of an ``out_h x out_w`` canvas it can reach
    -> (warped window, its y0, its x0), or None when it lands outside."""
    h, w = window.shape
    # Pixel squares' corners: a destination pixel samples its nearest source pixel centre.
    corners = np.array(
        [
            [x0 - 0.5, y0 - 0.5],
            [x0 + w - 0.5, y0 - 0.5],
            [x0 - 0.5, y0 + h - 0.5],
            [x0 + w - 0.5, y0 + h - 0.5],
        ]
    )
    dst = corners @ matrix[:, :2].T + matrix[:, 2]
    dx0, dy0 = np.clip(np.floor(dst.min(axis=0)).astype(int) - 1, 0, [out_w, out_h])
    dx1, dy1 = np.clip(np.ceil(dst.max(axis=0)).astype(int) + 2, 0, [out_w, out_h])
    if dx1 <= dx0 or dy1 <= dy0:
        return None
    local = matrix.copy()
    local[:, 2] += matrix[:, :2] @ [x0, y0] - [dx0, dy0]
    warped = cv2.warpAffine(
        np.ascontiguousarray(window),
        local,
        (int(dx1 - dx0), int(dy1 - dy0)),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return warped, int(dy0), int(dx0)


def tight_boxes(rows_any: np.ndarray, cols_any: np.ndarray) -> np.ndarray:
    """Boxes from per-instance row/column occupancy bool[N, H], bool[N, W] -> float32[N, 4]."""
    n, h = rows_any.shape
    w = cols_any.shape[1]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0 or h == 0 or w == 0:
        return boxes
    nonempty = rows_any.any(axis=1)
    boxes[:, 0] = np.argmax(cols_any, axis=1)
    boxes[:, 1] = np.argmax(rows_any, axis=1)
    boxes[:, 2] = w - np.argmax(cols_any[:, ::-1], axis=1)
    boxes[:, 3] = h - np.argmax(rows_any[:, ::-1], axis=1)
    boxes[~nonempty] = 0
    return boxes
