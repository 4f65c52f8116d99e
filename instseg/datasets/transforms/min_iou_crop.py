"""SSD's zoom-in: a random crop that overlaps every box by at least a drawn IoU."""

from __future__ import annotations

import numpy as np
from mmcv.transforms.utils import cache_randomness

from instseg.registry import TRANSFORMS

from .crop import RandomCrop
from .geometric import keep_instances


@TRANSFORMS.register_module()
class MinIoURandomCrop(RandomCrop):
    """SSD's random crop (mmdetection's semantics): a window whose IoU with every box is at
    least a threshold drawn from ``min_ious`` (or 0, or no crop at all, each with the same odds).

    A threshold is drawn from ``(no crop, *min_ious, 0)``; then up to 50 windows are tried, each
    side drawn in ``[min_crop_size, 1]`` of the image's, aspect ratio h/w in [0.5, 2]. A window is
    taken when its IoU with every box is ``>= threshold`` and at least one box's centre lies
    strictly inside it; only the instances whose centres are inside stay, cut to the window
    (boxes clipped with ``bbox_clip_border`` and re-fitted to their cut masks, as
    :class:`RandomCrop` does). Without boxes any window is taken. After ``max_draws``
    thresholds without a window the image stays as it is (mmdetection keeps drawing forever).
    """

    def __init__(
        self,
        min_ious: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        bbox_clip_border: bool = True,
        max_draws: int = 20,
    ) -> None:
        if not 0 < min_crop_size <= 1:
            raise ValueError(
                f'MinIoURandomCrop: min_crop_size must be in (0, 1], got {min_crop_size}'
            )
        if not all(0 <= t <= 1 for t in min_ious):
            raise ValueError(f'MinIoURandomCrop: min_ious must lie in [0, 1], got {min_ious!r}')
        # RandomCrop's window cut, keeping an image whose kept instances all emptied.
        super().__init__(
            crop_size=(1, 1), allow_negative_crop=True, bbox_clip_border=bbox_clip_border
        )
        self.min_ious = tuple(min_ious)
        self.min_crop_size = min_crop_size
        self.max_draws = max_draws

    @cache_randomness
    def _draw_window(
        self, boxes: np.ndarray, h: int, w: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(window int [x1, y1, x2, y2], bool centre-inside mask over boxes), or None: no crop."""
        modes = (1.0, *self.min_ious, 0.0)  # 1.0: leave the image as it is
        for _ in range(self.max_draws):
            min_iou = modes[np.random.randint(len(modes))]
            if min_iou == 1.0:
                return None
            for _ in range(50):
                new_w = np.random.uniform(self.min_crop_size * w, w)
                new_h = np.random.uniform(self.min_crop_size * h, h)
                if not 0.5 <= new_h / new_w <= 2:
                    continue
                left = np.random.uniform(w - new_w)
                top = np.random.uniform(h - new_h)
                window = np.array([left, top, left + new_w, top + new_h]).astype(np.int64)
                if window[2] == window[0] or window[3] == window[1]:
                    continue
                if len(boxes) == 0:
                    return window, np.zeros(0, dtype=bool)
                if _window_iou(window, boxes).min() < min_iou:
                    continue
                centre = (boxes[:, :2] + boxes[:, 2:]) / 2
                inside = (
                    (centre[:, 0] > window[0])
                    & (centre[:, 1] > window[1])
                    & (centre[:, 0] < window[2])
                    & (centre[:, 1] < window[3])
                )
                if inside.any():
                    return window, inside
        return None

    def transform(self, results: dict) -> dict:
        """Crop ``img``, ``gt_*`` and ``gt_seg_map`` to a drawn window (or leave them)."""
        h, w = results['img'].shape[:2]
        boxes = results.get('gt_bboxes')
        boxes = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes)
        drawn = self._draw_window(boxes, h, w)
        if drawn is None:
            return results
        window, inside = drawn
        if len(boxes):
            keep_instances(results, inside)
        return self._crop_data(results, window)

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(min_ious={self.min_ious}, '
            f'min_crop_size={self.min_crop_size}, bbox_clip_border={self.bbox_clip_border})'
        )


def _window_iou(window: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one int window [4] with boxes [N, 4] -> [N]."""
    lt = np.maximum(window[:2], boxes[:, :2])
    rb = np.minimum(window[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area_w = (window[2] - window[0]) * (window[3] - window[1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area_w + area_b - inter, 1e-6)
