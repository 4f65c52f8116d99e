"""Random cropping that keeps boxes, masks, labels and ignore flags consistent."""

from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from instseg.registry import TRANSFORMS
from instseg.structures.masks import PolygonMasks

from .geometric import record_homography

CROP_TYPES = ('absolute', 'absolute_range', 'relative', 'relative_range')


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random window; boxes and masks are cut to it and emptied instances dropped.

    Args:
        crop_size: 'absolute': (h, w) pixels; 'absolute_range': (min, max) pixels, each side
            drawn in [min, max]; 'relative': (h, w) fractions of the image;
            'relative_range': (h, w) lower bounds of fractions drawn up to 1. A crop never
            exceeds the image.
        crop_type: one of the four above. Defaults to 'absolute'.
        allow_negative_crop: keep a crop that holds no instance; otherwise return None (the
            dataset then draws another image). Defaults to False.
        recompute_bbox: set every box to the tight box of its cropped mask. Defaults to False,
            which still re-fits the boxes the crop cuts when masks are present (a clipped box is
            no longer tight around the clipped mask).
        bbox_clip_border: clip boxes to the crop. Defaults to True.

    An instance is dropped when its box falls outside the crop or, with masks, when the crop
    leaves its mask empty. Sets ``img_shape``.
    """

    def __init__(
        self,
        crop_size: tuple[int, int] | tuple[float, float],
        crop_type: str = 'absolute',
        allow_negative_crop: bool = False,
        recompute_bbox: bool = False,
        bbox_clip_border: bool = True,
    ) -> None:
        if crop_type not in CROP_TYPES:
            raise ValueError(
                f'RandomCrop: crop_type must be one of {CROP_TYPES}, got {crop_type!r}'
            )
        crop_size = tuple(crop_size)
        if len(crop_size) != 2:
            raise ValueError(f'RandomCrop: crop_size must have two values, got {crop_size!r}')
        if crop_type.startswith('absolute'):
            if not all(isinstance(s, (int, np.integer)) and s > 0 for s in crop_size):
                raise ValueError(
                    f'RandomCrop: {crop_type} crop_size must be positive ints, got {crop_size!r}'
                )
            if crop_type == 'absolute_range' and crop_size[0] > crop_size[1]:
                raise ValueError(f'RandomCrop: absolute_range needs min <= max, got {crop_size!r}')
        elif not all(0 < s <= 1 for s in crop_size):
            raise ValueError(
                f'RandomCrop: {crop_type} crop_size must be fractions in (0, 1], got {crop_size!r}'
            )
        self.crop_size = crop_size
        self.crop_type = crop_type
        self.allow_negative_crop = allow_negative_crop
        self.recompute_bbox = recompute_bbox
        self.bbox_clip_border = bbox_clip_border

    @cache_randomness
    def _get_crop_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(crop_h, crop_w) in pixels for an image of ``image_size`` (h, w)."""
        h, w = image_size
        if self.crop_type == 'absolute':
            return min(self.crop_size[0], h), min(self.crop_size[1], w)
        if self.crop_type == 'absolute_range':
            lo, hi = self.crop_size
            return (
                np.random.randint(min(h, lo), min(h, hi) + 1),
                np.random.randint(min(w, lo), min(w, hi) + 1),
            )
        fractions = np.asarray(self.crop_size, dtype=np.float64)
        if self.crop_type == 'relative_range':
            fractions = fractions + np.random.rand(2) * (1 - fractions)
        return int(h * fractions[0] + 0.5), int(w * fractions[1] + 0.5)

    @cache_randomness
    def _rand_offset(self, margin: tuple[int, int]) -> tuple[int, int]:
        """(offset_h, offset_w), each uniform in [0, margin]."""
        return np.random.randint(0, margin[0] + 1), np.random.randint(0, margin[1] + 1)

    def transform(self, results: dict) -> dict | None:
        """Crop ``img``, ``gt_*`` and ``gt_seg_map``; None when nothing is left and
        ``allow_negative_crop`` is False."""
        h, w = results['img'].shape[:2]
        crop_h, crop_w = self._get_crop_size((h, w))
        offset_h, offset_w = self._rand_offset((max(h - crop_h, 0), max(w - crop_w, 0)))
        window = np.array([offset_w, offset_h, offset_w + crop_w, offset_h + crop_h])
        return self._crop_data(results, window)

    def _crop_data(self, results: dict, window: np.ndarray) -> dict | None:
        x1, y1, x2, y2 = (int(v) for v in window)
        img = results['img'][y1:y2, x1:x2]
        height, width = img.shape[:2]
        bboxes = results.get('gt_bboxes')
        masks = results.get('gt_masks')
        if bboxes is not None:
            bboxes = bboxes - np.array([x1, y1, x1, y1], dtype=np.float32)
            cut = (bboxes[:, :2] < 0).any(1) | (bboxes[:, 2] > width) | (bboxes[:, 3] > height)
            if self.bbox_clip_border:
                bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, width)
                bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, height)
            valid = (
                (bboxes[:, 0] < width)
                & (bboxes[:, 1] < height)
                & (bboxes[:, 2] > 0)
                & (bboxes[:, 3] > 0)
            )
            if masks is not None:
                masks = masks[valid].crop(window)
                bboxes = bboxes[valid]
                # Only masks the crop cuts can change; only those are decoded (a few pixels each).
                changed = cut[valid] | self.recompute_bbox
                if changed.any():
                    moved = masks[changed]
                    tight = moved.get_bboxes()
                    if self.bbox_clip_border or self.recompute_bbox:
                        bboxes[changed] = tight
                    empty = tight[:, 2] <= tight[:, 0]
                    if isinstance(moved, PolygonMasks):
                        # A clipped polygon can be a sliver that covers no pixel centre.
                        empty |= moved.to_rle_masks().areas == 0
                    emptied = np.zeros(len(bboxes), dtype=bool)
                    emptied[changed] = empty
                    valid[np.flatnonzero(valid)[emptied]] = False
                    masks, bboxes = masks[~emptied], bboxes[~emptied]
            else:
                bboxes = bboxes[valid]
            if not valid.any() and not self.allow_negative_crop:
                return None
            results['gt_bboxes'] = bboxes.astype(np.float32)
            for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
                if results.get(key) is not None:
                    results[key] = results[key][valid]
            if masks is not None:
                results['gt_masks'] = masks
        elif masks is not None:
            results['gt_masks'] = masks.crop(window)
        results['img'] = img
        results['img_shape'] = (height, width)
        if results.get('gt_seg_map') is not None:
            results['gt_seg_map'] = results['gt_seg_map'][y1:y2, x1:x2]
        record_homography(results, [[1, 0, -x1], [0, 1, -y1], [0, 0, 1]])
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(crop_size={self.crop_size}, crop_type={self.crop_type}, '
            f'allow_negative_crop={self.allow_negative_crop}, '
            f'recompute_bbox={self.recompute_bbox}, bbox_clip_border={self.bbox_clip_border})'
        )


@TRANSFORMS.register_module()
class CropTile(RandomCrop):
    """Crop the window ``results['tile']`` (x0, y0, x1, y1) that :class:`TiledDataset` chose.

    Instances the window cuts stay training targets when at least ``min_visible`` of their
    area (mask pixels, or box area without masks) is inside it; the others become ignore
    regions (``gt_ignore_flags``, which the assigners skip when ``ignore_iof_thr > 0``), so the
    model is neither taught to find a sliver nor to call it background. Instances left empty
    are dropped.

    Args:
        min_visible: fraction in [0, 1] of an instance's area that must remain. Defaults to 0.5.
    """

    def __init__(self, min_visible: float = 0.5) -> None:
        if not 0.0 <= min_visible <= 1.0:
            raise ValueError(f'CropTile: min_visible must be in [0, 1], got {min_visible!r}')
        super().__init__(crop_size=(1, 1), allow_negative_crop=True)
        self.min_visible = float(min_visible)

    def transform(self, results: dict) -> dict:
        """Crop to ``results['tile']``, flagging too-small remains as ignored."""
        if 'tile' not in results:
            raise KeyError('CropTile: results have no "tile" window; use it inside TiledDataset')
        window = np.asarray(results['tile'], dtype=np.int64)
        bboxes = results.get('gt_bboxes')
        if bboxes is not None and len(bboxes):
            masks = results.get('gt_masks')
            if masks is not None:
                before, after = masks.areas, masks.crop(window).areas
            else:
                clipped = bboxes.copy()
                clipped[:, 0::2] = clipped[:, 0::2].clip(window[0], window[2])
                clipped[:, 1::2] = clipped[:, 1::2].clip(window[1], window[3])
                before, after = _box_areas(bboxes), _box_areas(clipped)
            visible = after / np.maximum(before, 1e-6)
            flags = results.get('gt_ignore_flags')
            flags = np.zeros(len(bboxes), dtype=bool) if flags is None else flags.copy()
            results['gt_ignore_flags'] = flags | ((after > 0) & (visible < self.min_visible))
        return self._crop_data(results, window)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(min_visible={self.min_visible})'


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
