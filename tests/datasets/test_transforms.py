"""Transforms: loading, resize, flip and packing keep image, boxes and masks consistent."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import cv2
import mmcv.transforms
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from pycocotools import mask as mask_utils

from instseg.datasets import CocoDataset
from instseg.datasets.transforms import (
    LoadAnnotations,
    PackDetInputs,
    RandomFlip,
    Resize,
)
from instseg.registry import TRANSFORMS
from instseg.structures import DetDataSample
from instseg.structures.masks import PolygonMasks, RLEMasks

H, W = 40, 60


def _rle_block(y0: int, y1: int, x0: int, x1: int, compressed: bool = True) -> dict:
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    if not compressed:
        # Uncompressed COCO RLE: column-major run lengths, starting with a run of zeros.
        counts, value, run = [], 0, 0
        for pixel in mask.flatten(order='F'):
            if pixel == value:
                run += 1
            else:
                counts.append(run)
                value, run = pixel, 1
        return dict(size=[H, W], counts=[*counts, run])
    rle = mask_utils.encode(np.asfortranarray(mask))
    return dict(size=[H, W], counts=rle['counts'].decode())


def _record(crowd: bool = True) -> dict:
    """A 40x60 image whose pixels encode their position, with two objects and a crowd region."""
    ys, xs = np.mgrid[0:H, 0:W]
    img = np.stack([xs * 4, ys * 6, (xs + ys) % 256], axis=-1).astype(np.uint8)
    instances = [
        dict(bbox=[10, 5, 30, 25], bbox_label=1, ignore_flag=0,
             mask=[[10, 5, 30, 5, 30, 25, 10, 25]]),
        dict(bbox=[40, 30, 55, 35], bbox_label=0, ignore_flag=0, mask=_rle_block(30, 35, 40, 55)),
    ]  # fmt: skip
    if crowd:
        instances.append(
            dict(bbox=[0, 0, 8, 40], bbox_label=2, ignore_flag=1,
                 mask=_rle_block(0, 40, 0, 8, compressed=False))
        )  # fmt: skip
    return dict(
        img=img, img_shape=(H, W), ori_shape=(H, W), img_id=7, img_path='x/seven.png',
        height=H, width=W, instances=instances,
    )  # fmt: skip


def _loaded(**kwargs) -> dict:
    return LoadAnnotations(with_mask=True, **kwargs)(_record())


def test_registry_names() -> None:
    assert issubclass(TRANSFORMS.get('LoadImageFromFile'), mmcv.transforms.LoadImageFromFile)
    for name, cls in [('LoadAnnotations', LoadAnnotations), ('Resize', Resize),
                      ('RandomFlip', RandomFlip), ('PackDetInputs', PackDetInputs)]:  # fmt: skip
        assert TRANSFORMS.get(name) is cls
        assert isinstance(TRANSFORMS.build(dict(type=name, **(
            dict(scale=(8, 8)) if name == 'Resize' else dict(prob=0.5) if name == 'RandomFlip'
            else {}))), cls)  # fmt: skip


def test_load_image_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.full((12, 20, 3), 7, np.uint8))
    out = load(dict(img_path=str(good)))
    assert out['img'].shape == (12, 20, 3) and out['ori_shape'] == (12, 20)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load(dict(img_path=str(tmp_path / 'missing.png')))
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not an image')
    with pytest.raises(Exception, match='broken.png'):
        load(dict(img_path=str(broken)))


def test_load_annotations_to_rle() -> None:
    out = _loaded()
    np.testing.assert_array_equal(
        out['gt_bboxes'], np.array([[10, 5, 30, 25], [40, 30, 55, 35], [0, 0, 8, 40]], np.float32)
    )
    assert out['gt_bboxes'].dtype == np.float32
    assert out['gt_bboxes_labels'].tolist() == [1, 0, 2]
    assert out['gt_bboxes_labels'].dtype == np.int64
    assert out['gt_ignore_flags'].tolist() == [False, False, True]
    masks = out['gt_masks']
    assert isinstance(masks, RLEMasks) and len(masks) == 3
    assert (masks.height, masks.width) == (H, W)
    np.testing.assert_array_equal(masks.areas, [400, 75, 320])
    np.testing.assert_array_equal(masks.get_bboxes(), out['gt_bboxes'])


def test_load_annotations_polygons_ignore_rle_instances() -> None:
    # as mmdetection: with poly2mask=False an RLE instance is ignored, with a zero-area polygon
    out = LoadAnnotations(with_mask=True, poly2mask=False)(_record())
    assert isinstance(out['gt_masks'], PolygonMasks) and len(out['gt_masks']) == 3
    assert out['gt_ignore_flags'].tolist() == [False, True, True]
    np.testing.assert_array_equal(out['gt_masks'].areas, [400, 0, 0])
    record = _record(crowd=False)
    record['instances'] = record['instances'][:1]
    out = LoadAnnotations(with_mask=True, poly2mask=False)(record)
    assert isinstance(out['gt_masks'], PolygonMasks)
    np.testing.assert_array_equal(out['gt_masks'].areas, [400])


def test_degenerate_polygons_become_ignored_empty_masks() -> None:
    record = _record(crowd=False)
    record['instances'][0]['mask'] = [[1.0, 2.0, 3.0, 4.0]]  # 2 points: no area
    out = LoadAnnotations(with_mask=True)(record)
    assert out['gt_ignore_flags'].tolist() == [True, False]
    np.testing.assert_array_equal(out['gt_masks'].areas, [0, 75])


def test_rle_of_another_size_is_rejected() -> None:
    record = _record(crowd=False)
    record['ori_shape'] = (H, W + 1)
    with pytest.raises(ValueError, match='RLE size'):
        LoadAnnotations(with_mask=True)(record)


def test_resize_keep_ratio_pinned() -> None:
    # (100, 50) as (long, short) edge limits: 60x40 scales by min(100/60, 50/40) = 1.25.
    out = Resize(scale=(100, 50), keep_ratio=True)(_loaded())
    assert out['img'].shape == (50, 75, 3)
    assert out['img_shape'] == (50, 75)
    assert out['scale_factor'] == (1.25, 1.25)
    # Scaled exactly, box 0 would be [12.5, 6.25, 37.5, 31.25]. The nearest resize samples
    # output pixel j at input (j + 0.5) / 1.25, so mask 0 (columns 10-29, rows 5-24) lands on
    # columns 12-36 and rows 6-30, and its box, tight before, stays tight to it.
    np.testing.assert_array_equal(
        out['gt_bboxes'], [[12, 6, 37, 31], [50, 37, 69, 44], [0, 0, 10, 50]]
    )
    assert out['gt_bboxes'].dtype == np.float32
    masks = out['gt_masks']
    assert (masks.height, masks.width) == (50, 75)
    np.testing.assert_array_equal(masks.get_bboxes(), out['gt_bboxes'])


def test_resize_keeps_the_margin_of_a_loose_box() -> None:
    results = _loaded()
    results['gt_bboxes'][0] = [8, 3, 33, 25]  # mask 0 fills [10, 5, 30, 25]
    out = Resize(scale=(100, 50), keep_ratio=True)(results)
    # The mask's box moved to [12, 6, 37, 31]; the box keeps its margins times 1.25.
    np.testing.assert_allclose(out['gt_bboxes'][0], [9.5, 3.5, 40.75, 31])


def test_resize_fixed_scale_clips_boxes() -> None:
    results = _loaded()
    results['gt_bboxes'][1] = [40, 30, 70, 45]  # beyond the 60x40 image
    out = Resize(scale=(30, 80))(results)  # (w, h), aspect ratio not kept
    assert out['img_shape'] == (80, 30)
    assert out['scale_factor'] == (0.5, 2.0)
    np.testing.assert_allclose(out['gt_bboxes'][:2], [[5, 10, 15, 50], [20, 60, 30, 80]])
    assert (out['gt_masks'].height, out['gt_masks'].width) == (80, 30)


def test_resize_by_scale_factor() -> None:
    out = Resize(scale_factor=2)(_loaded())
    assert out['img_shape'] == (80, 120)
    np.testing.assert_allclose(out['gt_bboxes'][0], [20, 10, 60, 50])
    np.testing.assert_array_equal(out['gt_masks'].areas[:2], [1600, 300])


@pytest.mark.parametrize(
    ('direction', 'box', 'axes'),
    [
        ('horizontal', [30, 5, 50, 25], (1,)),
        ('vertical', [10, 15, 30, 35], (0,)),
        ('diagonal', [30, 15, 50, 35], (0, 1)),
    ],
)
def test_flip_pinned(direction: str, box: list[int], axes: tuple[int, ...]) -> None:
    before = _loaded()
    img, masks = before['img'].copy(), before['gt_masks'].to_ndarray()
    out = RandomFlip(prob=1, direction=direction)(before)
    assert out['flip'] is True and out['flip_direction'] == direction
    np.testing.assert_array_equal(out['img'], np.flip(img, axes))
    np.testing.assert_array_equal(out['gt_bboxes'][0], box)
    np.testing.assert_array_equal(
        out['gt_masks'].to_ndarray(), np.flip(masks, [a + 1 for a in axes])
    )
    np.testing.assert_array_equal(out['gt_masks'].get_bboxes(), out['gt_bboxes'])


def test_flip_probabilities() -> None:
    out = RandomFlip(prob=0.0)(_loaded())
    assert out['flip'] is False and out['flip_direction'] is None
    np.testing.assert_array_equal(out['gt_bboxes'][0], [10, 5, 30, 25])
    out = RandomFlip(prob=[0, 1], direction=['horizontal', 'vertical'])(_loaded())
    assert out['flip_direction'] == 'vertical'


def test_pack_splits_ignored_instances() -> None:
    results = RandomFlip(prob=0.0)(_loaded())
    packed = PackDetInputs()(results)
    inputs = packed['inputs']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, H, W) and inputs.is_contiguous()
    assert torch.equal(inputs, torch.from_numpy(results['img']).permute(2, 0, 1))
    sample = packed['data_samples']
    assert isinstance(sample, DetDataSample)
    gt, ignored = sample.gt_instances, sample.ignored_instances
    assert gt.bboxes.dtype == torch.float32 and gt.labels.dtype == torch.int64
    assert gt.labels.tolist() == [1, 0] and ignored.labels.tolist() == [2]
    assert torch.equal(ignored.bboxes, torch.tensor([[0.0, 0.0, 8.0, 40.0]]))
    assert isinstance(gt.masks, RLEMasks) and len(gt.masks) == 2 and len(ignored.masks) == 1
    np.testing.assert_array_equal(ignored.masks.areas, [320])
    assert sample.metainfo == dict(
        img_id=7, img_path='x/seven.png', ori_shape=(H, W), img_shape=(H, W),
        flip=False, flip_direction=None,
    )  # fmt: skip


def test_pack_without_annotations_has_no_gt() -> None:
    record = _record()
    packed = PackDetInputs(meta_keys=('img_id', 'scale_factor'))(record)
    assert packed['inputs'].shape == (3, H, W)
    assert not hasattr(packed['data_samples'], 'gt_instances')
    assert packed['data_samples'].metainfo == dict(img_id=7)


def test_image_without_instances_packs_empty_ground_truth() -> None:
    record = _record()
    record['instances'] = []
    results = LoadAnnotations(with_mask=True)(record)
    results = RandomFlip(prob=1.0)(Resize(scale=(30, 20))(results))
    gt = PackDetInputs()(results)['data_samples'].gt_instances
    assert len(gt) == 0 and gt.bboxes.shape == (0, 4) and gt.labels.shape == (0,)
    assert isinstance(gt.masks, RLEMasks) and (gt.masks.height, gt.masks.width) == (20, 30)


def test_nuclei_pipeline_keeps_every_instance_compact(nuclei: Path) -> None:
    """1,862 nuclei through load -> resize -> flip -> pack without N full-size bitmaps."""
    coco = json.loads((nuclei / 'annotations' / 'instances_all.json').read_text())
    img_id = 21
    num = sum(a['image_id'] == img_id for a in coco['annotations'])
    ds = CocoDataset(
        data_root=str(nuclei),
        ann_file='annotations/instances_all.json',
        data_prefix=dict(img='images/'),
        metainfo=dict(classes=('nucleus',)),
        test_mode=True,
        serialize_data=False,
    )
    record = next(
        ds.get_data_info(i) for i in range(len(ds)) if ds.get_data_info(i)['img_id'] == img_id
    )
    pipeline = Compose(
        [
            TRANSFORMS.build(dict(type='LoadImageFromFile')),
            TRANSFORMS.build(dict(type='LoadAnnotations', with_bbox=True, with_mask=True)),
            TRANSFORMS.build(dict(type='Resize', scale=(1333, 800), keep_ratio=True)),
            TRANSFORMS.build(dict(type='RandomFlip', prob=1.0)),
            TRANSFORMS.build(dict(type='PackDetInputs')),
        ]
    )
    tracemalloc.start()
    try:
        packed = pipeline(record)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out_h, out_w = 800, 800
    assert num == 1862
    assert peak < num * out_h * out_w / 50, f'peak {peak / 2**20:.0f} MiB'
    assert packed['inputs'].shape == (3, out_h, out_w)
    gt = packed['data_samples'].gt_instances
    assert len(gt) == num and len(packed['data_samples'].ignored_instances) == 0
    assert (gt.masks.height, gt.masks.width) == (out_h, out_w)
    assert (gt.masks.areas > 0).all()
    # Boxes and masks went through the same resize and flip. Nearest downsampling drops thin
    # one-pixel protrusions of some nuclei (2 lose more than 2 px of extent): their boxes
    # follow, so every box is still its mask's tight box.
    np.testing.assert_array_equal(gt.masks.get_bboxes(), gt.bboxes.numpy())
    assert packed['data_samples'].flip_direction == 'horizontal'
