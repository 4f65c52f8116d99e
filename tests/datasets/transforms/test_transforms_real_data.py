"""The ms-crop training pipeline on real images: COCO photos and a dense nuclei tile."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

from instseg.datasets import CocoDataset
from instseg.structures.masks import RLEMasks

ROOT = Path(__file__).resolve().parents[3]
MS_CROP = Config.fromfile(ROOT / 'configs' / '_base_' / 'datasets' / 'coco_instance_ms_crop.py')
SHORTS = {s for _, s in MS_CROP.multi_scales}


def check_output(out: dict) -> None:
    h, w = out['img_shape']
    assert out['img'].shape[:2] == (h, w) and min(h, w) in SHORTS and max(h, w) <= 1333
    masks, boxes = out['gt_masks'], out['gt_bboxes']
    assert isinstance(masks, RLEMasks) and (masks.height, masks.width) == (h, w)
    assert len(masks) == len(boxes) == len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags'])
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= h).all()


def test_ms_crop_pipeline_on_coco_tiny(coco_tiny: Path) -> None:
    with DefaultScope.overwrite_default_scope('instseg'):
        dataset = CocoDataset(
            data_root=str(coco_tiny), ann_file='annotations/instances_val2017.json',
            data_prefix=dict(img='val2017/'), pipeline=[], serialize_data=False,
        )  # fmt: skip
        steps = Compose(MS_CROP.train_pipeline[:-1])
        pack = Compose(MS_CROP.train_pipeline[-1:])
    np.random.seed(0)
    done = 0
    for i in range(6):
        out = steps(dataset.get_data_info(i))
        if out is None:  # a crop with no instance left: the dataset would draw another image
            continue
        check_output(out)
        crowd = out['gt_ignore_flags']
        # A COCO box (polygon extent) and its rasterised mask differ by up to a source pixel;
        # the pipeline scales that, and adds at most half a pixel of resampling.
        scale = np.abs(out['homography_matrix'][:2, :2]).max()
        gap = np.abs(out['gt_masks'].get_bboxes() - out['gt_bboxes']).max(axis=1)
        assert (gap[~crowd] <= 0.5 + scale).all()
        packed = pack(out)
        assert packed['inputs'].shape[1:] == tuple(out['img_shape'])
        assert len(packed['data_samples'].gt_instances) == int((~crowd).sum())
        done += 1
    assert done >= 4


def test_ms_crop_pipeline_keeps_a_dense_tile_compact(nuclei: Path) -> None:
    """1,862 nuclei on a 1000 x 1000 tile through resize, crop and resize without N
    full-size masks: memory grows with the instances, not with instances x image size."""
    with DefaultScope.overwrite_default_scope('instseg'):
        dataset = CocoDataset(
            data_root=str(nuclei), ann_file='annotations/instances_all.json',
            data_prefix=dict(img='images/'), metainfo=dict(classes=('nucleus',)),
            test_mode=True, serialize_data=False,
        )  # fmt: skip
        pipeline = Compose(MS_CROP.train_pipeline)
    record = next(
        dataset.get_data_info(i)
        for i in range(len(dataset))
        if dataset.get_data_info(i)['img_id'] == 21
    )
    num = len(record['instances'])
    assert num == 1862
    np.random.seed(1)
    for _ in range(2):
        tracemalloc.start()
        try:
            packed = pipeline(dict(record))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        h, w = packed['inputs'].shape[1:]
        assert min(h, w) in SHORTS
        assert peak < num * h * w / 50, f'peak {peak / 2**20:.0f} MiB'
        gt = packed['data_samples'].gt_instances
        assert 0 < len(gt) <= num and isinstance(gt.masks, RLEMasks)
        assert (gt.masks.areas > 0).all()
        gap = np.abs(gt.masks.get_bboxes() - gt.bboxes.numpy()).max(axis=1)
        assert (gap <= 1.5).mean() > 0.97 and gap.max() <= 5.0
