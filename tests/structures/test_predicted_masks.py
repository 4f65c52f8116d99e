"""PredictedMasks: compact predicted masks agree with dense pasting, COCO RLE and InstanceData."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.structures import InstanceData

from instseg.models.roi_heads.mask_heads import paste_masks, paste_masks_compact
from instseg.structures import PredictedMasks


def random_dense(seed: int = 0, k: int = 6, h: int = 37, w: int = 23) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dense = np.zeros((k, h, w), dtype=bool)
    dense[0, 3:10, 4:9] = rng.random((7, 5)) > 0.4
    dense[1, :, 2:5] = True  # full-height columns: runs continue into the next column
    dense[3, h - 7 :, w - 3 :] = True  # touches the bottom-right corner
    dense[4] = rng.random((h, w)) > 0.5
    dense[5, 0, 0] = True
    return dense  # mask 2 is empty


def test_from_dense_round_trips_and_rle_matches_pycocotools() -> None:
    dense = random_dense()
    masks = PredictedMasks.from_dense(dense)
    assert masks.shape == dense.shape and len(masks) == 6
    np.testing.assert_array_equal(masks.to_ndarray(), dense)
    assert torch.equal(masks.to_tensor(), torch.from_numpy(dense))
    expected = mask_util.encode(np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8)))
    assert [r['counts'] for r in masks.to_rle()] == [r['counts'] for r in expected]
    assert all(r['size'] == [37, 23] for r in masks.to_rle())
    np.testing.assert_array_equal(masks.areas, dense.sum(axis=(1, 2)))
    np.testing.assert_array_equal(
        masks.get_bboxes()[[0, 2, 5]], [[4, 3, 9, 10], [0] * 4, [0, 0, 1, 1]]
    )
    # tight windows: far fewer bytes than the dense masks
    assert masks.nbytes < dense.nbytes


@pytest.mark.parametrize('mode', ['grid_sample', 'torchvision'])
def test_compact_paste_equals_dense_paste(mode: str) -> None:
    torch.manual_seed(0)
    probs = torch.rand(40, 28, 28)
    xy = torch.rand(40, 2) * torch.tensor([120.0, 90.0]) - 10
    wh = torch.rand(40, 2) * 40 + 0.3
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[0] = torch.tensor([-20.0, -20.0, -5.0, -5.0])  # outside the image: an empty mask
    dense = paste_masks(probs, boxes, (80, 100), 0.5, mode)
    compact = paste_masks_compact(probs, boxes, (80, 100), 0.5, mode)
    assert isinstance(compact, PredictedMasks) and compact.shape == (40, 80, 100)
    assert torch.equal(compact.to_tensor(), dense)
    assert compact.areas[0] == 0
    # each window is the box rounded outwards, so memory follows the boxes' area
    win = compact.windows
    if mode == 'grid_sample':
        inside = torch.minimum(boxes[1:].clamp(min=0), torch.tensor([100.0, 80.0, 100.0, 80.0]))
        assert (win[1:, :2] >= inside[:, :2].floor().numpy()).all()
        assert (win[1:, 2:] <= inside[:, 2:].ceil().numpy()).all()
    assert compact.nbytes < 0.2 * dense.numel()
    with pytest.raises(ValueError, match="mask_format='tensor'"):
        paste_masks_compact(probs, boxes, (80, 100), -1.0, mode)


def test_empty_prediction() -> None:
    empty = paste_masks_compact(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6))
    assert (
        empty.shape == (0, 5, 6) and empty.to_rle() == [] and empty.to_ndarray().shape == (0, 5, 6)
    )


def test_indexing_and_cat_follow_instance_data() -> None:
    dense = random_dense()
    masks = PredictedMasks.from_dense(dense)
    inst = InstanceData(scores=torch.arange(6.0), masks=masks)
    kept = inst[inst.scores > 2.5]
    np.testing.assert_array_equal(kept.masks.to_ndarray(), dense[3:])
    np.testing.assert_array_equal(inst[torch.tensor([4, 0])].masks.to_ndarray(), dense[[4, 0]])
    np.testing.assert_array_equal(inst[1:3].masks.to_ndarray(), dense[1:3])
    assert len(inst[inst.scores > 9].masks) == 0
    both = InstanceData.cat([inst[:2], inst[4:]])
    np.testing.assert_array_equal(both.masks.to_ndarray(), dense[[0, 1, 4, 5]])
    with pytest.raises(ValueError, match='different canvases'):
        masks.cat([masks, PredictedMasks.from_dense(dense[:, :10])])


def test_flip_and_translate() -> None:
    dense = random_dense()
    masks = PredictedMasks.from_dense(dense)
    np.testing.assert_array_equal(masks.flip('horizontal').to_ndarray(), dense[:, :, ::-1])
    np.testing.assert_array_equal(masks.flip('vertical').to_ndarray(), dense[:, ::-1])
    np.testing.assert_array_equal(masks.flip('diagonal').to_ndarray(), dense[:, ::-1, ::-1])
    moved = masks.translate(5, 7, 50, 40)
    expected = np.zeros((6, 50, 40), dtype=bool)
    expected[:, 7:44, 5:28] = dense
    np.testing.assert_array_equal(moved.to_ndarray(), expected)
    with pytest.raises(ValueError, match='not inside'):
        masks.translate(30, 0, 37, 23)


def test_bad_construction_is_refused() -> None:
    with pytest.raises(ValueError, match='hold 4 pixels, data has 3'):
        PredictedMasks(np.zeros(3, bool), np.array([[0, 0, 2, 2]]), 5, 5)
    with pytest.raises(ValueError, match=r'\[3, 0, 6, 2\] is not inside the 5x5'):
        PredictedMasks(np.zeros(6, bool), np.array([[3, 0, 6, 2]]), 5, 5)
    with pytest.raises(ValueError, match='2 patches for 1 windows'):
        PredictedMasks.from_patches([np.ones((1, 1))] * 2, [[0, 0, 1, 1]], 5, 5)
