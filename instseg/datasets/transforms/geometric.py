"""Geometric transforms that keep the image, boxes and masks consistent."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import RandomFlip as MMCVRandomFlip
from mmcv.transforms import Resize as MMCVResize

from instseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class Resize(MMCVResize):
    """Resize ``img`` and, with it, ``gt_bboxes`` (scaled, optionally clipped) and ``gt_masks``.

    ``scale`` is (w, h); with ``keep_ratio`` it is read as (long edge, short edge) limits, as
    :func:`mmcv.rescale_size` does (e.g. (1333, 800)). ``scale_factor`` (float or (w, h) tuple)
    is used when ``scale`` is None. Sets ``img_shape`` (h, w) and ``scale_factor``
    (w_scale, h_scale); masks are resized to exactly ``img_shape``.
    """

    def __init__(
        self,
        scale: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        keep_ratio: bool = False,
        clip_object_border: bool = True,
        backend: str = 'cv2',
        interpolation: str = 'bilinear',
    ) -> None:
        if isinstance(scale_factor, int):
            scale_factor = float(scale_factor)
        elif isinstance(scale_factor, list):
            scale_factor = tuple(scale_factor)
        if isinstance(scale, list):
            scale = tuple(scale)
        super().__init__(
            scale=scale,
            scale_factor=scale_factor,
            keep_ratio=keep_ratio,
            clip_object_border=clip_object_border,
            backend=backend,
            interpolation=interpolation,
        )

    def _resize_bboxes(self, results: dict) -> None:
        bboxes = results.get('gt_bboxes')
        if bboxes is None:
            return
        w_scale, h_scale = results['scale_factor']
        bboxes = bboxes * np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
        if self.clip_object_border:
            height, width = results['img_shape'][:2]
            bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, width)
            bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, height)
        results['gt_bboxes'] = bboxes.astype(np.float32)

    def transform(self, results: dict) -> dict:
        """Resize image, boxes, masks (and mmcv's seg map / keypoints if present)."""
        results = super().transform(results)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].resize(tuple(results['img_shape'][:2]))
        return results


@TRANSFORMS.register_module()
class RandomFlip(MMCVRandomFlip):
    """Flip ``img``, ``gt_bboxes`` and ``gt_masks`` together with probability ``prob``.

    ``direction`` is 'horizontal', 'vertical', 'diagonal' or a list of them; ``prob`` a float
    (shared among the listed directions) or a list with one probability per direction.
    Sets ``flip`` (bool) and ``flip_direction`` (str or None).
    """

    def __init__(
        self,
        prob: float | Sequence[float] | None = None,
        direction: str | Sequence[str] = 'horizontal',
    ) -> None:
        # mmcv insists on floats; accept prob=1 or [0, 1] from configs too.
        if isinstance(prob, (int, float)) and not isinstance(prob, bool):
            prob = float(prob)
        elif isinstance(prob, Sequence):
            prob = [float(p) for p in prob]
        if isinstance(direction, tuple):
            direction = list(direction)
        super().__init__(prob=prob, direction=direction)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].flip(results['flip_direction'])
