"""PhotoMetricDistortion (pinned colour steps) and FilterAnnotations (mmdetection's rules)."""

from __future__ import annotations

import numpy as np
import pytest

from instseg.datasets.transforms import FilterAnnotations, PhotoMetricDistortion
from instseg.structures.masks import BitmapMasks, RLEMasks

# mode, brightness, contrast, saturation, hue, swap flags, then their values.
OFF = dict(mode=0, bright=0, contrast=0, sat=0, hue=0, swap=0, delta=0.0, alpha=1.0,
           saturation=1.0, hue_value=0.0, order=np.arange(3))  # fmt: skip


def distort(img: np.ndarray, **steps) -> np.ndarray:
    flags = {**OFF, **steps}
    transform = PhotoMetricDistortion()
    transform._random_flags = lambda: tuple(flags.values())
    return transform(dict(img=img.copy()))['img']


def test_each_colour_step_pinned() -> None:
    img = np.array([[[0, 100, 250], [0, 0, 255]]], np.uint8)  # BGR: a pixel and pure red
    out = distort(img, bright=1, delta=10.0)
    np.testing.assert_array_equal(out, [[[10, 110, 255], [10, 10, 255]]])  # clipped at 255
    assert out.dtype == np.uint8
    out = distort(img, contrast=1, alpha=1.5)
    np.testing.assert_array_equal(out, [[[0, 150, 255], [0, 0, 255]]])
    out = distort(img, swap=1, order=np.array([2, 0, 1]))
    np.testing.assert_array_equal(out, img[..., [2, 0, 1]])
    # Hue +120 degrees turns red into green; no saturation turns it white (V = 255).
    np.testing.assert_array_equal(distort(img, hue=1, hue_value=120.0)[0, 1], [0, 255, 0])
    np.testing.assert_array_equal(distort(img, sat=1, saturation=0.0)[0, 1], [255, 255, 255])
    # The HSV round trip alone changes nothing.
    np.testing.assert_array_equal(distort(img, sat=1, hue=1), img)
    # Contrast before (mode 1) or after (mode 0) the colour steps.
    late = distort(img, mode=0, contrast=1, alpha=0.5, sat=1, saturation=0.0)
    early = distort(img, mode=1, contrast=1, alpha=0.5, sat=1, saturation=0.0)
    np.testing.assert_array_equal(late[0, 1], [128, 128, 128])
    np.testing.assert_array_equal(early[0, 1], [128, 128, 128])
    np.testing.assert_array_equal(late[0, 0], [125, 125, 125])  # grey of V=250, then halved
    np.testing.assert_array_equal(early[0, 0], [125, 125, 125])


def test_random_distortion_keeps_geometry_and_dtype() -> None:
    np.random.seed(1)
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    boxes = np.array([[1, 2, 10, 12]], np.float32)
    results = dict(img=img.copy(), gt_bboxes=boxes.copy())
    changed = 0
    transform = PhotoMetricDistortion()
    for _ in range(5):
        out = transform(dict(results, img=img.copy()))
        assert out['img'].dtype == np.uint8 and out['img'].shape == img.shape
        np.testing.assert_array_equal(out['gt_bboxes'], boxes)
        changed += not np.array_equal(out['img'], img)
    assert changed >= 4
    floats = transform(dict(img=img.astype(np.float32)))['img']
    assert floats.dtype == np.float32
    with pytest.raises(ValueError, match='3-channel'):
        transform(dict(img=img[..., 0], img_path='gray.png'))
    with pytest.raises(ValueError, match='contrast_range'):
        PhotoMetricDistortion(contrast_range=(1.5, 0.5))


def filter_input() -> dict:
    masks = np.zeros((4, 20, 20), np.uint8)
    masks[0, 0:5, 0:1] = 1  # 5 px
    masks[2, 0:1, 0:3] = 1  # 3 px; instance 1 has an empty mask
    masks[3, 0:10, 0:10] = 1
    return dict(
        gt_bboxes=np.array(
            [[0, 0, 1, 5], [0, 0, 2, 2], [0, 0, 5, 1.5], [0, 0, 10, 10]], np.float32
        ),
        gt_bboxes_labels=np.array([0, 1, 2, 3]),
        gt_ignore_flags=np.array([False, True, False, False]),
        gt_masks=RLEMasks(BitmapMasks(masks, 20, 20).to_rle(), 20, 20),
    )


@pytest.mark.parametrize(
    ('kwargs', 'kept'),
    [
        (dict(), [1, 2, 3]),  # 0 is 1 px wide: not wider than 1
        (dict(min_gt_bbox_wh=(1, 2)), [3]),
        (dict(by_box=False, by_mask=True), [0, 2, 3]),
        (dict(by_box=False, by_mask=True, min_gt_mask_area=4), [0, 3]),
        (dict(by_mask=True), [2, 3]),
    ],
)
def test_filter_annotations_rules(kwargs: dict, kept: list[int]) -> None:
    out = FilterAnnotations(**kwargs)(filter_input())
    assert out['gt_bboxes_labels'].tolist() == kept
    assert out['gt_ignore_flags'].tolist() == [i == 1 for i in kept]
    np.testing.assert_array_equal(out['gt_bboxes'], filter_input()['gt_bboxes'][kept])
    np.testing.assert_array_equal(
        out['gt_masks'].to_ndarray(), filter_input()['gt_masks'].to_ndarray()[kept]
    )


def test_filter_annotations_empty_results() -> None:
    everything = dict(min_gt_bbox_wh=(100, 100))
    assert FilterAnnotations(**everything)(filter_input()) is None  # keep_empty=True: skip
    out = FilterAnnotations(**everything, keep_empty=False)(filter_input())
    assert out['gt_bboxes'].shape == (0, 4) and len(out['gt_masks']) == 0
    nothing = dict(gt_bboxes=np.zeros((0, 4), np.float32), gt_bboxes_labels=np.zeros(0))
    assert FilterAnnotations()(dict(nothing)) == nothing
    with pytest.raises(KeyError, match='LoadAnnotations'):
        FilterAnnotations()(dict(img_path='a.png'))
    with pytest.raises(KeyError, match='with_mask'):
        FilterAnnotations(by_mask=True)(dict(gt_bboxes=np.ones((1, 4), np.float32)))
    with pytest.raises(ValueError, match='by_box'):
        FilterAnnotations(by_box=False)
