"""Expand and MinIoURandomCrop (SSD's zoom out and zoom in): boxes and masks stay together."""

from __future__ import annotations

import numpy as np
import pytest
from transform_samples import make_results

from instseg.datasets.transforms import Expand, MinIoURandomCrop


@pytest.mark.parametrize('kind', ['polygon', 'rle', 'bitmap'])
def test_expand_places_image_boxes_and_masks_at_the_offset(kind: str) -> None:
    rng = np.random.default_rng(0)
    before = make_results(rng, 5, 40, 60, kind=kind)
    img, boxes = before['img'].copy(), before['gt_bboxes'].copy()
    full = before['gt_masks'].to_ndarray()
    expand = Expand(mean=(1, 2, 3), to_rgb=True, ratio_range=(1, 4), prob=1.0)
    expand._draw = lambda h, w: (100, 130, 7, 11)  # canvas 100x130, image at y 7, x 11
    out = expand(before)
    assert out['img_shape'] == (100, 130) and out['img'].shape == (100, 130, 3)
    np.testing.assert_array_equal(out['img'][7:47, 11:71], img)
    np.testing.assert_array_equal(out['img'][0, 0], [3, 2, 1])  # RGB mean on a BGR image
    np.testing.assert_allclose(out['gt_bboxes'], boxes + [11, 7, 11, 7], atol=1e-5)
    masks = out['gt_masks']
    assert (masks.height, masks.width) == (100, 130) and type(masks) is type(before['gt_masks'])
    want = np.zeros((len(full), 100, 130), np.uint8)
    want[:, 7:47, 11:71] = full
    np.testing.assert_array_equal(masks.to_ndarray(), want)
    np.testing.assert_array_equal(out['homography_matrix'], [[1, 0, 11], [0, 1, 7], [0, 0, 1]])


def test_expand_draws_within_its_range_and_prob() -> None:
    np.random.seed(0)
    rng = np.random.default_rng(1)
    shapes = set()
    for _ in range(40):
        out = Expand(ratio_range=(1.5, 2.0), prob=0.5)(make_results(rng, 3, 30, 40))
        h, w = out['img_shape']
        shapes.add((h, w) == (30, 40))
        if (h, w) != (30, 40):
            assert 45 <= h <= 60 and 60 <= w <= 80
            boxes = out['gt_bboxes']
            assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), boxes)
    assert shapes == {True, False}  # some images expanded, some not
    assert Expand(prob=0.0)(make_results(rng, 3, 30, 40))['img_shape'] == (30, 40)


@pytest.mark.parametrize('kind', ['rle', 'bitmap'])
def test_min_iou_crop_keeps_centred_instances_cut_to_the_window(kind: str) -> None:
    np.random.seed(3)
    rng = np.random.default_rng(3)
    crop = MinIoURandomCrop(min_ious=(0.1, 0.3, 0.5), min_crop_size=0.3)
    cropped = 0
    for _ in range(60):
        before = make_results(rng, 6, 80, 100, kind=kind)
        boxes0, full = before['gt_bboxes'].copy(), before['gt_masks'].to_ndarray()
        out = crop(before)
        if out['img_shape'] == (80, 100):
            continue
        cropped += 1
        x1, y1 = (-out['homography_matrix'][:2, 2]).astype(int)
        h, w = out['img_shape']
        window = np.array([x1, y1, x1 + w, y1 + h])
        assert 0.5 <= h / w <= 2 and h >= 0.3 * 80 - 1 and w >= 0.3 * 100 - 1
        kept = out['gt_bboxes_labels']  # instance indices
        centre = (boxes0[kept, :2] + boxes0[kept, 2:]) / 2
        assert ((centre > window[:2]) & (centre < window[2:])).all()
        np.testing.assert_array_equal(
            out['gt_masks'].to_ndarray(), full[kept, y1 : y1 + h, x1 : x1 + w]
        )
        np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), out['gt_bboxes'])
    assert cropped > 20


def test_min_iou_crop_without_boxes_and_bad_arguments() -> None:
    np.random.seed(0)
    img = np.zeros((50, 70, 3), np.uint8)
    shapes = {MinIoURandomCrop()(dict(img=img, img_shape=(50, 70)))['img_shape'] for _ in range(20)}
    assert len(shapes) > 2  # crops of many sizes; (50, 70) when no crop was drawn
    with pytest.raises(ValueError, match='min_crop_size'):
        MinIoURandomCrop(min_crop_size=0)
    with pytest.raises(ValueError, match='min_ious'):
        MinIoURandomCrop(min_ious=(0.5, 1.5))
    with pytest.raises(ValueError, match='ratio_range'):
        Expand(ratio_range=(0.5, 2))
