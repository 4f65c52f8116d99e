"""Random resizes, Pad and the recorded homography: hand-checked shapes, boxes and masks."""

from __future__ import annotations

import numpy as np
import pytest

from instseg.datasets.transforms import (
    Pad,
    RandomChoiceResize,
    RandomFlip,
    RandomResize,
    Resize,
)
from instseg.registry import TRANSFORMS
from instseg.structures.masks import PolygonMasks, RLEMasks

H, W = 40, 60


def results() -> dict:
    polys = PolygonMasks(
        [[np.array([10, 5, 30, 5, 30, 25, 10, 25], float)],
         [np.array([40, 30, 55, 30, 55, 35, 40, 35], float)]], H, W,
    )  # fmt: skip
    return dict(
        img=np.full((H, W, 3), 9, np.uint8),
        img_shape=(H, W),
        gt_bboxes=np.array([[10, 5, 30, 25], [40, 30, 55, 35]], np.float32),
        gt_bboxes_labels=np.array([0, 1]),
        gt_ignore_flags=np.array([False, False]),
        gt_masks=RLEMasks.from_polygons(polys),
    )


def test_random_resize_by_ratio_and_between_two_scales() -> None:
    out = RandomResize(scale=(60, 40), ratio_range=(0.5, 0.5), keep_ratio=True)(results())
    assert out['img_shape'] == (20, 30) and out['scale'] == (30, 20)
    # Output pixel i samples input 2i + 1: mask 0 (rows 5-24) keeps rows 2-11, mask 1 (columns
    # 40-54, rows 30-34) columns 20-26 and rows 15-16. Scaled exactly, the boxes would be
    # [5, 2.5, 15, 12.5] and [20, 15, 27.5, 17.5]; they follow their masks' tight boxes.
    np.testing.assert_array_equal(out['gt_masks'].areas, [100, 7 * 2])
    np.testing.assert_array_equal(out['gt_bboxes'], [[5, 2, 15, 12], [20, 15, 27, 17]])
    np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), out['gt_bboxes'])
    # Config lists work as tuples; (w, h) drawn between the two corners, here pinned.
    out = TRANSFORMS.build(dict(type='RandomResize', scale=[[90, 20], [90, 20]]))(results())
    assert out['img_shape'] == (20, 90) and out['scale_factor'] == (1.5, 0.5)
    assert (out['gt_masks'].height, out['gt_masks'].width) == (20, 90)
    np.testing.assert_allclose(out['gt_bboxes'][0], [15, 2, 45, 12])
    np.random.seed(3)
    shapes = {RandomResize((60, 40), (0.5, 2.0), keep_ratio=True)(results())['img_shape']
              for _ in range(20)}  # fmt: skip
    assert len(shapes) > 10 and all(20 <= h <= 80 and abs(w - h * 1.5) <= 1 for h, w in shapes)
    with pytest.raises(ValueError, match='ratio_range'):
        RandomResize(scale=(60, 40))


def test_random_choice_resize_draws_from_the_list() -> None:
    np.random.seed(0)
    resize = TRANSFORMS.build(
        dict(type='RandomChoiceResize', scales=[[30, 20], (120, 80)], keep_ratio=True)
    )
    # Built from instseg's registry even outside its default scope: masks follow the image.
    assert type(resize.resize) is Resize
    seen = set()
    for _ in range(20):
        out = resize(results())
        factor = 0.5 if out['scale_idx'] == 0 else 2.0
        assert out['img_shape'] == (int(H * factor), int(W * factor))
        # Within half a pixel of the exact scaling, and tight around the resampled mask.
        exact = np.array([10, 5, 30, 25]) * factor
        assert np.abs(out['gt_bboxes'][0] - exact).max() <= 0.5
        assert (out['gt_masks'].height, out['gt_masks'].width) == out['img_shape']
        np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), out['gt_bboxes'])
        seen.add(out['scale_idx'])
    assert seen == {0, 1}
    single = RandomChoiceResize(scales=(30, 20), keep_ratio=False)(results())
    assert single['img_shape'] == (20, 30)


def test_resize_and_flip_record_the_pixel_map() -> None:
    out = Resize(scale=(90, 20))(results())
    np.testing.assert_allclose(out['homography_matrix'], np.diag([1.5, 0.5, 1.0]))
    out = RandomFlip(prob=1.0, direction='diagonal')(out)
    # Composed: x -> 90 - 1.5 x, y -> 20 - 0.5 y. The box corners follow it, up to the half
    # pixel by which the halved rows of the mask (and so its box) moved onto the pixel grid.
    np.testing.assert_allclose(out['homography_matrix'], [[-1.5, 0, 90], [0, -0.5, 20], [0, 0, 1]])
    corners = np.array([[10, 5, 1], [30, 25, 1]]) @ out['homography_matrix'].T
    np.testing.assert_allclose(np.sort(corners[:, 0]), out['gt_bboxes'][0, 0::2])
    np.testing.assert_allclose(np.sort(corners[:, 1]), [7.5, 17.5])
    np.testing.assert_allclose(out['gt_bboxes'][0, 1::2], [8, 18])
    np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), out['gt_bboxes'])


@pytest.mark.parametrize(
    ('kwargs', 'shape'),
    [
        (dict(size=(64, 48)), (48, 64)),
        (dict(size_divisor=32), (64, 64)),
        (dict(pad_to_square=True), (60, 60)),
        (dict(pad_to_square=True, size_divisor=32), (64, 64)),
    ],
)
def test_pad_sizes(kwargs: dict, shape: tuple[int, int]) -> None:
    before = results()
    masks = before['gt_masks'].to_ndarray()
    out = Pad(pad_val=dict(img=7), **kwargs)(before)
    assert out['img'].shape == (*shape, 3) and out['img_shape'] == shape
    assert out['pad_shape'][:2] == shape
    assert (out['img'][H:] == 7).all() and (out['img'][:, W:] == 7).all()
    assert (out['img'][:H, :W] == 9).all()
    np.testing.assert_array_equal(out['gt_bboxes'], [[10, 5, 30, 25], [40, 30, 55, 35]])
    padded = out['gt_masks'].to_ndarray()
    assert padded.shape == (2, *shape)
    np.testing.assert_array_equal(padded[:, :H, :W], masks)
    assert padded[:, H:].sum() == 0 and padded[:, :, W:].sum() == 0


def test_pad_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match='exactly one of size and size_divisor'):
        Pad()
    with pytest.raises(ValueError, match='exactly one of size and size_divisor'):
        Pad(size=(64, 64), size_divisor=32)
    with pytest.raises(ValueError, match='not both'):
        Pad(size=(64, 64), pad_to_square=True)
    with pytest.raises(ValueError, match='masks are padded with 0'):
        Pad(size_divisor=32, pad_val=dict(img=0, masks=1))
    assert Pad(size_divisor=32, pad_val=5).pad_val == dict(img=5, seg=255)
