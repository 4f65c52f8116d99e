"""RandomCrop: hand-checked crops of boxes and masks, dropped instances, crop sizes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from instseg.datasets.transforms import RandomCrop
from instseg.registry import TRANSFORMS
from instseg.structures.masks import BitmapMasks, PolygonMasks, RLEMasks

H, W = 40, 60
# 0: rectangle (crowd); 1: rectangle bottom right; 2: an L (bar along the top, leg down the
# right); 3: an L whose leg and foot both end up outside the crop used below.
POLYGONS = [
    [np.array([10, 5, 30, 5, 30, 25, 10, 25], float)],
    [np.array([40, 30, 55, 30, 55, 35, 40, 35], float)],
    [np.array([32, 2, 58, 2, 58, 28, 50, 28, 50, 10, 32, 10], float)],
    [np.array([44, 12, 48, 12, 48, 36, 36, 36, 36, 32, 44, 32], float)],
]
BOXES = [[10, 5, 30, 25], [40, 30, 55, 35], [32, 2, 58, 28], [36, 12, 48, 36]]


def results(kind: str) -> dict:
    polys = PolygonMasks(POLYGONS, H, W)
    masks = {'polygon': polys, 'rle': RLEMasks.from_polygons(polys)}[kind]
    ys, xs = np.mgrid[0:H, 0:W]
    return dict(
        img=np.stack([xs, ys, xs + ys], -1).astype(np.uint8),
        img_shape=(H, W),
        gt_bboxes=np.array(BOXES, np.float32),
        gt_bboxes_labels=np.array([10, 11, 12, 13]),
        gt_ignore_flags=np.array([True, False, False, False]),
        gt_masks=masks,
        gt_seg_map=(ys * 100 + xs).astype(np.int32),
    )


def fixed_offset(crop: RandomCrop, offset_h: int, offset_w: int) -> RandomCrop:
    crop._rand_offset = lambda margin: (offset_h, offset_w)
    return crop


@pytest.mark.parametrize('kind', ['polygon', 'rle'])
def test_crop_cuts_refits_and_drops(kind: str) -> None:
    before = results(kind)
    full = before['gt_masks'].to_ndarray()
    img = before['img'].copy()
    # Window x 20..40, y 0..30.
    crop = fixed_offset(RandomCrop(crop_size=(30, 20)), 0, 20)
    out = crop(before)
    assert out['img_shape'] == (30, 20)
    np.testing.assert_array_equal(out['img'], img[0:30, 20:40])
    np.testing.assert_array_equal(out['gt_seg_map'][0], np.arange(20, 40))
    # 1 lies right of the crop; 3's box overlaps it but none of its pixels do: both dropped.
    assert out['gt_bboxes_labels'].tolist() == [10, 12]
    assert out['gt_ignore_flags'].tolist() == [True, False]
    # 0 is clipped; 2's clipped box [12, 2, 20, 28] is re-fitted to what is left of it, the
    # top bar (rows 2-9, columns 32-39).
    np.testing.assert_array_equal(out['gt_bboxes'], [[0, 5, 10, 25], [12, 2, 20, 10]])
    assert out['gt_bboxes'].dtype == np.float32
    masks = out['gt_masks']
    assert type(masks) is type(before['gt_masks']) and (masks.height, masks.width) == (30, 20)
    np.testing.assert_array_equal(masks.to_ndarray(), full[[0, 2], 0:30, 20:40])
    np.testing.assert_array_equal(out['homography_matrix'], [[1, 0, -20], [0, 1, 0], [0, 0, 1]])


def test_crop_without_clipping_keeps_boxes_but_drops_emptied_masks() -> None:
    crop = fixed_offset(RandomCrop(crop_size=(30, 20), bbox_clip_border=False), 0, 20)
    out = crop(results('rle'))
    assert out['gt_bboxes_labels'].tolist() == [10, 12]
    np.testing.assert_array_equal(out['gt_bboxes'], [[-10, 5, 10, 25], [12, 2, 38, 28]])


def test_recompute_bbox_fits_every_box_to_its_mask() -> None:
    before = results('rle')
    before['gt_bboxes'][1] = [38, 28, 57, 37]  # loose around its mask [40, 30, 55, 35]
    out = fixed_offset(RandomCrop(crop_size=(40, 60)), 0, 0)(dict(before))
    np.testing.assert_array_equal(out['gt_bboxes'][1], [38, 28, 57, 37])  # nothing was cut
    out = fixed_offset(RandomCrop(crop_size=(40, 60), recompute_bbox=True), 0, 0)(results('rle'))
    np.testing.assert_array_equal(out['gt_bboxes'], np.array(BOXES, np.float32))


def test_negative_crop_is_refused_or_kept_empty() -> None:
    # The bottom-left corner x 0..8, y 36..40 holds no instance.
    assert fixed_offset(RandomCrop(crop_size=(4, 8)), 36, 0)(results('rle')) is None
    crop = fixed_offset(RandomCrop(crop_size=(4, 8), allow_negative_crop=True), 36, 0)
    out = crop(results('rle'))
    assert out['gt_bboxes'].shape == (0, 4) and out['gt_bboxes_labels'].shape == (0,)
    assert len(out['gt_masks']) == 0 and (out['gt_masks'].height, out['gt_masks'].width) == (4, 8)
    assert out['img'].shape == (4, 8, 3)


def test_crop_of_bitmaps_and_of_masks_without_boxes() -> None:
    before = results('rle')
    bitmaps = BitmapMasks(before['gt_masks'].to_ndarray(), H, W)
    out = fixed_offset(RandomCrop(crop_size=(30, 20)), 0, 20)(dict(before, gt_masks=bitmaps))
    assert isinstance(out['gt_masks'], BitmapMasks) and len(out['gt_masks']) == 2
    masks_only = dict(img=before['img'], gt_masks=before['gt_masks'])
    out = fixed_offset(RandomCrop(crop_size=(30, 20)), 0, 20)(masks_only)
    assert len(out['gt_masks']) == 4 and out['gt_masks'].to_ndarray().shape == (4, 30, 20)


def test_crop_sizes_of_each_type() -> None:
    np.random.seed(0)
    assert RandomCrop((30, 20))._get_crop_size((H, W)) == (30, 20)
    assert RandomCrop((50, 100))._get_crop_size((H, W)) == (40, 60)  # never beyond the image
    assert RandomCrop((0.5, 0.25), 'relative')._get_crop_size((H, W)) == (20, 15)
    ranged = RandomCrop((10, 30), 'absolute_range')
    sizes = np.array([ranged._get_crop_size((H, W)) for _ in range(200)])
    assert sizes.min() == 10 and sizes.max() == 30  # both ends inclusive, w capped at 30
    relative = RandomCrop((0.5, 0.25), 'relative_range')
    sizes = np.array([relative._get_crop_size((H, W)) for _ in range(200)])
    assert sizes[:, 0].min() >= 20 and sizes[:, 0].max() <= 40
    assert sizes[:, 1].min() >= 15 and sizes[:, 1].max() <= 60
    assert len(np.unique(sizes[:, 1])) > 20
    # The offset keeps the window inside the image.
    for _ in range(50):
        out = RandomCrop((25, 35), allow_negative_crop=True)(results('rle'))
        x0, y0 = -out['homography_matrix'][:2, 2]
        assert 0 <= x0 <= W - 35 and 0 <= y0 <= H - 25 and out['img'].shape[:2] == (25, 35)


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        (dict(crop_size=(10, 10), crop_type='square'), 'crop_type'),
        (dict(crop_size=(0.5, 0.5)), 'positive ints'),
        (dict(crop_size=(30, 10), crop_type='absolute_range'), 'min <= max'),
        (dict(crop_size=(0.0, 0.5), crop_type='relative'), r'\(0, 1\]'),
        (dict(crop_size=(10, 10, 10)), 'two values'),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TRANSFORMS.build(dict(type='RandomCrop', **kwargs))
