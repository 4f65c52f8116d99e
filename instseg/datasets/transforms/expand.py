"""SSD's zoom-out: the image on a larger mean-coloured canvas, boxes and masks moved with it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from instseg.registry import TRANSFORMS

from .geometric import record_homography


@TRANSFORMS.register_module()
class Expand(BaseTransform):
    """With probability ``prob``, place the image at a random offset on a canvas ``ratio`` times
    its size (``ratio`` drawn from ``ratio_range``) filled with ``mean`` (mmdetection's
    semantics).

    Args:
        mean: fill colour, in the image's channel order unless ``to_rgb`` (then ``mean`` is RGB
            and the image BGR, so it is reversed). Defaults to (0, 0, 0).
        to_rgb: see ``mean``. Defaults to True.
        ratio_range: (min, max) canvas-to-image size ratio, min >= 1. Defaults to (1, 4).
        seg_ignore_label: fill of ``gt_seg_map`` outside the image; None disables the seg map.
        prob: probability of expanding. Defaults to 0.5.

    Boxes shift by the offset, masks move onto the larger canvas (compact containers stay
    compact), ``img_shape`` becomes the canvas size.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0, 0, 0),
        to_rgb: bool = True,
        ratio_range: Sequence[float] = (1, 4),
        seg_ignore_label: int | None = None,
        prob: float = 0.5,
    ) -> None:
        if len(ratio_range) != 2 or not 1 <= ratio_range[0] <= ratio_range[1]:
            raise ValueError(
                f'Expand: ratio_range must be (min, max), 1 <= min <= max, got {ratio_range!r}'
            )
        if not 0 <= prob <= 1:
            raise ValueError(f'Expand: prob must be in [0, 1], got {prob}')
        self.mean = tuple(mean)[::-1] if to_rgb else tuple(mean)
        self.to_rgb = to_rgb
        self.ratio_range = tuple(ratio_range)
        self.seg_ignore_label = seg_ignore_label
        self.prob = prob

    @cache_randomness
    def _draw(self, h: int, w: int) -> tuple[int, int, int, int] | None:
        """(canvas h, canvas w, top, left), or None: no expansion."""
        if np.random.uniform() > self.prob:
            return None
        ratio = np.random.uniform(*self.ratio_range)
        top = int(np.random.uniform(0, h * ratio - h))
        left = int(np.random.uniform(0, w * ratio - w))
        return int(h * ratio), int(w * ratio), top, left

    def transform(self, results: dict) -> dict:
        """Expand ``img`` and move ``gt_bboxes``, ``gt_masks`` and ``gt_seg_map``."""
        img = results['img']
        h, w = img.shape[:2]
        drawn = self._draw(h, w)
        if drawn is None:
            return results
        new_h, new_w, top, left = drawn
        new_h, new_w = max(new_h, top + h), max(new_w, left + w)
        channels = img.shape[2] if img.ndim == 3 else 1
        if len(self.mean) != channels:
            raise ValueError(
                f'Expand: mean has {len(self.mean)} values for a {channels}-channel image'
            )
        canvas = np.empty((new_h, new_w, channels), dtype=img.dtype)
        canvas[...] = np.asarray(self.mean, dtype=np.float64).astype(img.dtype)
        canvas[top : top + h, left : left + w] = img.reshape(h, w, channels)
        results['img'] = canvas if img.ndim == 3 else canvas[..., 0]
        results['img_shape'] = (new_h, new_w)
        if results.get('gt_bboxes') is not None:
            shift = np.array([left, top, left, top], dtype=np.float32)
            results['gt_bboxes'] = (results['gt_bboxes'] + shift).astype(np.float32)
        masks = results.get('gt_masks')
        if masks is not None:
            masks = masks.translate((new_h, new_w), left, 'horizontal')
            results['gt_masks'] = masks.translate((new_h, new_w), top, 'vertical')
        if results.get('gt_seg_map') is not None:
            if self.seg_ignore_label is None:
                raise ValueError('Expand: results hold gt_seg_map; set seg_ignore_label to fill it')
            seg = results['gt_seg_map']
            out = np.full((new_h, new_w), self.seg_ignore_label, dtype=seg.dtype)
            out[top : top + h, left : left + w] = seg
            results['gt_seg_map'] = out
        record_homography(results, [[1, 0, left], [0, 1, top], [0, 0, 1]])
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(mean={self.mean}, to_rgb={self.to_rgb}, '
            f'ratio_range={self.ratio_range}, seg_ignore_label={self.seg_ignore_label}, '
            f'prob={self.prob})'
        )
