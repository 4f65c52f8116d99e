"""Sliced inference: tiles come back in image coordinates, objects cut by tile borders merge into
one detection with their full mask, images are read window by window."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch import nn

from instseg.datasets.large_image import LargeImage
from instseg.models.test_time_augs import TiledInferenceModel
from instseg.structures import DetDataSample, PredictedMasks
from instseg.structures.tile_merge import merge_tile_detections

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape')),
]
H, W = 100, 160  # tiles of 100 x 100 with overlap 40 start at x = 0 and x = 60


class BlobDetector(nn.Module):
    """Reports every 4-connected blob of red pixels of the image it is given as one detection
    (score grows with the blob's area, label 0): a detector exact up to its field of view."""

    def __init__(self, with_masks: bool = True) -> None:
        super().__init__()
        self.with_masks = with_masks
        self.calls: list[int] = []

    def test_step(self, data: dict) -> list[DetDataSample]:
        self.calls.append(len(data['inputs']))
        for img, sample in zip(data['inputs'], data['data_samples'], strict=True):
            red = (img[2] > 128).numpy().astype(np.uint8)
            num, comp, stats, _ = cv2.connectedComponentsWithStats(red, connectivity=4)
            masks = np.stack([comp == k for k in range(1, num)]) if num > 1 else None
            boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:]]
            pred = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor([min(1.0, a / 1e4) for a in stats[1:, 4]]),
                labels=torch.zeros(num - 1, dtype=torch.long),
            )
            if self.with_masks:
                shape = (0, *red.shape) if masks is None else masks
                pred.masks = PredictedMasks.from_dense(
                    np.zeros(shape, bool) if masks is None else masks
                )
            sample.pred_instances = pred
        return list(data['data_samples'])


def image_with(rects: list[tuple[int, int, int, int]]) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for x0, y0, x1, y1 in rects:
        img[y0:y1, x0:x1, 2] = 255
    return img


@pytest.fixture(autouse=True)
def _scope() -> None:
    init_default_scope('instseg')


def tiled(detector: nn.Module | None = None, **kwargs) -> TiledInferenceModel:
    kwargs = {'tile_size': 100, 'overlap': 40, 'batch_size': 2, **kwargs}
    return TiledInferenceModel(detector or BlobDetector(), PIPELINE, **kwargs)


def test_objects_cut_by_tile_borders_come_back_whole() -> None:
    rects = [
        (80, 10, 130, 30),  # cut by tile 0's right edge (x = 100), whole in tile 1
        (50, 40, 115, 60),  # wider than the overlap: each tile sees a part, none all of it
        (62, 70, 90, 90),  # inside the overlap: found whole by both tiles
        (5, 5, 20, 95),  # only in tile 0
    ]
    img = image_with(rects)
    model = tiled()
    sample = model.predict_image(img)
    pred = sample.pred_instances
    assert sample.metainfo['tiles'] == 2 and sample.metainfo['ori_shape'] == (H, W)
    assert model.module.calls == [2]  # both tiles in one batch
    assert isinstance(pred.masks, PredictedMasks) and pred.masks.shape == (4, H, W)
    boxes = sorted(map(tuple, pred.bboxes.round().int().tolist()))
    assert boxes == sorted(rects)
    expected = {r: np.zeros((H, W), bool) for r in rects}
    for (x0, y0, x1, y1), mask in expected.items():
        mask[y0:y1, x0:x1] = True
    for box, mask in zip(pred.bboxes.round().int().tolist(), pred.masks.to_ndarray(), strict=True):
        np.testing.assert_array_equal(mask, expected[tuple(box)])
    # image-size RLE, as CocoMetric and --out want it
    assert all(rle['size'] == [H, W] for rle in pred.masks.to_rle())


def test_touching_objects_of_one_tile_stay_apart_and_box_only_models_merge_boxes() -> None:
    # Two blobs that touch diagonally (4-connectivity keeps them apart) inside tile 0 only.
    img = image_with([(5, 5, 20, 20), (20, 20, 35, 35), (80, 10, 130, 30)])
    pred = tiled().predict_image(img).pred_instances
    assert len(pred) == 3
    boxes_only = tiled(BlobDetector(with_masks=False)).predict_image(img).pred_instances
    assert 'masks' not in boxes_only
    assert sorted(map(tuple, boxes_only.bboxes.int().tolist())) == [
        (5, 5, 20, 20), (20, 20, 35, 35), (80, 10, 130, 30)
    ]  # fmt: skip


def test_empty_image_and_small_image() -> None:
    empty = tiled().predict_image(np.zeros((H, W, 3), np.uint8)).pred_instances
    assert len(empty) == 0 and empty.masks.shape == (0, H, W)
    small = tiled().predict_image(image_with([(80, 10, 130, 30)])[:50, :70])
    assert small.metainfo['tiles'] == 1 and small.pred_instances.masks.shape == (0, 50, 70)


def test_merge_needs_enough_overlap() -> None:
    # Two tiles' detections of the same label overlapping by 10 of 40 pixels: below iou_thr.
    dense = np.zeros((2, 20, 60), bool)
    dense[0, 0:10, 0:4] = True  # 40 px in tile 0
    dense[1, 0:10, 3:7] = True  # 40 px in tile 1, 10 shared
    dets = InstanceData(
        bboxes=torch.tensor([[0.0, 0, 4, 10], [3, 0, 7, 10]]),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 0]),
        masks=PredictedMasks.from_dense(dense),
    )
    windows = np.array([[0, 0, 40, 20], [2, 0, 60, 20]])
    assert len(merge_tile_detections(dets, np.array([0, 1]), windows, 0.5)) == 2
    merged = merge_tile_detections(dets, np.array([0, 1]), windows, 0.25)
    assert len(merged) == 1 and merged.masks.areas.tolist() == [70]
    assert merged.bboxes.tolist() == [[0, 0, 7, 10]] and merged.scores.tolist() == pytest.approx(
        [0.9]
    )
    # the same pair from one tile is two objects the detector already told apart
    assert len(merge_tile_detections(dets, np.array([0, 0]), windows, 0.25)) == 2
    with pytest.raises(ValueError, match=r'iou_thr must be in \(0, 1\]'):
        merge_tile_detections(dets, np.array([0, 1]), windows, 0.0)


def test_images_are_read_window_by_window(tmp_path: Path) -> None:
    import tifffile  # part of [dev]: a missing install fails here rather than skipping
    img = image_with([(80, 10, 130, 30), (5, 5, 20, 95)])
    np.save(tmp_path / 'big.npy', img)
    cv2.imwrite(str(tmp_path / 'big.png'), img)
    tifffile.imwrite(tmp_path / 'big.tif', np.ascontiguousarray(img[..., ::-1]))  # RGB on disk
    window = (70, 5, 140, 40)
    for name, lazy in (('big.npy', True), ('big.tif', True), ('big.png', False)):
        source = LargeImage(tmp_path / name)
        assert (source.height, source.width, source.lazy) == (H, W, lazy), name
        np.testing.assert_array_equal(source.read(window), img[5:40, 70:140], err_msg=name)
    from_file = tiled().predict_image(tmp_path / 'big.tif')
    from_array = tiled().predict_image(img)
    assert torch.equal(from_file.pred_instances.bboxes, from_array.pred_instances.bboxes)
    assert from_file.metainfo['img_path'].endswith('big.tif')
    gray = LargeImage(img[..., 2].copy())
    assert gray.read(window).shape == (35, 70, 3)
    with pytest.raises(ValueError, match='8-bit images, got uint16'):
        LargeImage(img.astype(np.uint16))
    with pytest.raises(FileNotFoundError, match='missing.tif'):
        LargeImage(tmp_path / 'missing.tif')


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r'overlap must be in \[0, 100\)'):
        tiled(overlap=100)
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        tiled(batch_size=0)
    with pytest.raises(ValueError, match='needs a test pipeline with LoadImageFromFile'):
        TiledInferenceModel(BlobDetector(), PIPELINE[1:], tile_size=100, overlap=40)
