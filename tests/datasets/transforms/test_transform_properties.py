"""Property test: random chains of geometric transforms keep every box on its mask and lose no
instance without a reason."""

from __future__ import annotations

import numpy as np
from transform_samples import make_results

from instseg.datasets.transforms import (
    Pad,
    RandomChoiceResize,
    RandomCrop,
    RandomFlip,
    RandomResize,
    Resize,
)
from instseg.structures.masks import BitmapMasks, PolygonMasks, RLEMasks
from instseg.structures.masks.polygon import clip_polygon

TRIALS = 150
KINDS = ('polygon', 'rle', 'bitmap')


def random_transform(rng: np.random.Generator, shape: tuple[int, int]):
    """One geometric transform with random arguments: resizes by 0.7-1.5 per step (aspect ratio
    kept, or changed by at most 25%), canvases of about 48-256 px."""
    h, w = shape
    pick = rng.integers(6)
    if pick == 0:
        f = rng.uniform(0.7, 1.5) if 48 < min(h, w) and max(h, w) < 256 else 1.0
        keep_ratio = bool(rng.integers(2))
        stretch = 1.0 if keep_ratio else rng.uniform(0.8, 1.25)
        size = (int(w * f * stretch), int(h * f)) if not keep_ratio else (int(w * f), int(h * f))
        return Resize(scale=size, keep_ratio=keep_ratio)
    if pick == 1:
        return RandomResize(scale=(w, h), ratio_range=(0.7, 1.4), keep_ratio=True)
    if pick == 2:
        return RandomChoiceResize(scales=[(200, 64), (120, 120), (90, 150)], keep_ratio=True)
    if pick == 3:
        return RandomFlip(prob=0.75, direction=['horizontal', 'vertical', 'diagonal'])
    if pick == 4:
        crop_type = ['absolute', 'absolute_range', 'relative', 'relative_range'][rng.integers(4)]
        size = (40, 90) if crop_type.startswith('absolute') else (0.4, 0.7)
        return RandomCrop(crop_size=size, crop_type=crop_type, allow_negative_crop=True)
    return Pad(size_divisor=32) if rng.integers(2) else Pad(pad_to_square=True)


def visible_part(polys: list[np.ndarray], matrix: np.ndarray, h: int, w: int) -> tuple:
    """Source polygons mapped by the 3x3 ``matrix`` and clipped to an h x w canvas
    -> (area, extent width, extent height) of what is left."""
    area, lo, hi = 0.0, np.full(2, np.inf), np.full(2, -np.inf)
    for poly in polys:
        xy = poly.reshape(-1, 2) @ matrix[:2, :2].T + matrix[:2, 2]
        xy = clip_polygon(xy, w, h)
        if len(xy) < 3:
            continue
        x, y = xy[:, 0], xy[:, 1]
        area += 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        lo, hi = np.minimum(lo, xy.min(0)), np.maximum(hi, xy.max(0))
    if area == 0:
        return 0.0, 0.0, 0.0
    return area, *(hi - lo)


def test_random_geometric_chains_keep_boxes_tight_and_explain_every_drop() -> None:
    rng = np.random.default_rng(2024)
    np.random.seed(2024)  # the transforms draw from numpy's global generator
    dropped = explained = kept = 0
    gaps = []
    for trial in range(TRIALS):
        kind = KINDS[trial % 3]
        h, w = (int(v) for v in rng.integers(64, 160, 2))
        results = make_results(rng, int(rng.integers(3, 10)), h, w, kind=kind)
        source = results['source_polygons']
        n0 = len(results['gt_bboxes'])
        for _ in range(int(rng.integers(2, 7))):
            transform = random_transform(rng, results['img_shape'])
            before = results['gt_bboxes_labels'].copy()
            results = transform(results)
            after = results['gt_bboxes_labels']
            lost = np.setdiff1d(before, after)
            # Only a crop may remove instances, and only ones it cut away or emptied.
            assert isinstance(transform, RandomCrop) or len(lost) == 0, (trial, transform)
            matrix = results.get('homography_matrix', np.eye(3))
            ch, cw = results['img_shape']
            for label in lost.tolist():
                area, ew, eh = visible_part(source[label].masks[0], matrix, ch, cw)
                # Nothing left, or a sliver no pixel centre of the crop falls in.
                assert area <= 3.0 or min(ew, eh) <= 2.0, (trial, label, area, ew, eh)
                explained += 1
            dropped += len(lost)
        masks, boxes = results['gt_masks'], results['gt_bboxes']
        assert (
            type(masks) is {'polygon': PolygonMasks, 'rle': RLEMasks, 'bitmap': BitmapMasks}[kind]
        )
        assert (masks.height, masks.width) == tuple(results['img_shape'])
        assert results['img'].shape[:2] == tuple(results['img_shape'])
        n = len(boxes)
        assert (
            len(masks) == len(results['gt_bboxes_labels']) == len(results['gt_ignore_flags']) == n
        )
        assert boxes.dtype == np.float32
        if n == 0:
            continue
        # Each box is its mask's tight box within 1 px: a raster mask's pixel extent, a polygon's
        # own extent (both transform with their boxes to float rounding).
        gaps.append(np.abs(masks.get_bboxes() - boxes).max(axis=1))
        pixels = masks.to_rle_masks() if kind == 'polygon' else masks
        assert (pixels.areas > 0).all(), trial  # no kept instance lost its mask
        if kind != 'polygon':
            # Resampled masks move their boxes with them: the box stays exactly tight.
            np.testing.assert_array_equal(masks.get_bboxes(), boxes, err_msg=str(trial))
        else:
            # Rasterising a polygon can miss a thin tip that no pixel centre falls in (up to
            # 1.9 px in 600 chains): a property of rasterisation, not of the transforms.
            assert np.abs(pixels.get_bboxes() - boxes).max() <= 2.5, trial
        kept += n
        assert dropped <= n0 * TRIALS
    # The chains did crop instances away, and every one was accounted for.
    assert explained == dropped and dropped > 50 and kept > 300, (dropped, kept)
    gaps = np.concatenate(gaps)
    assert gaps.max() <= 1.0, (np.sort(gaps)[-10:], len(gaps))
