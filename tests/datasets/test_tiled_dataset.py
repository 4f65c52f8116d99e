"""TiledDataset and CropTile: training tiles cut from large annotated images, and the windows
they share with tiled inference."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_utils

from instseg.datasets import TiledDataset
from instseg.structures.tiles import tile_windows

# 160 x 240 image; rectangles (x0, y0, x1, y1): one inside the first tile, one the vertical
# border at x = 100 cuts 30 / 10 px, one cut 5 / 35.
RECTS = [(10, 10, 40, 40), (70, 60, 110, 80), (95, 100, 135, 130)]


def _rle(y0: int, y1: int, x0: int, x1: int) -> dict:
    mask = np.zeros((160, 240), np.uint8)
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return dict(size=[160, 240], counts=rle['counts'].decode())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_default_scope('instseg')
    cv2.imwrite(str(tmp_path / 'big.png'), np.full((160, 240, 3), 90, np.uint8))
    anns = [
        dict(id=i + 1, image_id=1, category_id=1, bbox=[x0, y0, x1 - x0, y1 - y0],
             area=(x1 - x0) * (y1 - y0), segmentation=_rle(y0, y1, x0, x1), iscrowd=0)
        for i, (x0, y0, x1, y1) in enumerate(RECTS)
    ]  # fmt: skip
    coco = dict(
        images=[dict(id=1, file_name='big.png', height=160, width=240)],
        annotations=anns,
        categories=[dict(id=1, name='thing')],
    )
    (tmp_path / 'ann.json').write_text(json.dumps(coco))
    return tmp_path


def _dataset_cfg(root: Path) -> dict:
    return dict(
        type='CocoDataset',
        data_root=str(root),
        ann_file='ann.json',
        data_prefix=dict(img=''),
        metainfo=dict(classes=('thing',)),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs'),
        ],
    )


def test_tile_windows_cover_the_image_and_end_on_its_edges() -> None:
    windows = tile_windows(1000, 1100, 512, 128)
    # starts 0, 384 and the last moved back to end on the edge: 488 (rows), 588 (columns)
    np.testing.assert_array_equal(np.unique(windows[:, 1]), [0, 384, 488])
    np.testing.assert_array_equal(np.unique(windows[:, 0]), [0, 384, 588])
    assert (windows[:, 2:] - windows[:, :2] == 512).all()
    assert windows[:, 2].max() == 1100 and windows[:, 3].max() == 1000
    covered = np.zeros((1000, 1100), bool)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # an image smaller than a tile is one window of its own size; exact fits need no extra tile
    np.testing.assert_array_equal(tile_windows(300, 200, 512, 128), [[0, 0, 200, 300]])
    np.testing.assert_array_equal(tile_windows(512, 512, 512, 128), [[0, 0, 512, 512]])
    assert len(tile_windows(896, 512, 512, 128)) == 2  # 0 and 384: ends exactly on the edge
    with pytest.raises(ValueError, match=r'overlap must be in \[0, 512\)'):
        tile_windows(100, 100, 512, 512)
    with pytest.raises(ValueError, match='tile size'):
        tile_windows(100, 100, (0, 5))


def test_sliding_tiles_cut_instances_and_ignore_small_remains(root: Path) -> None:
    ds = TiledDataset(_dataset_cfg(root), tile_size=(160, 100), overlap=0, min_visible=0.5)
    # tiles at columns 0, 100 and 140; the last holds no box centre and is left out
    assert len(ds) == 2
    np.testing.assert_array_equal(ds.get_data_info(1)['tile'], [100, 0, 200, 160])
    first = ds[0]['data_samples']
    assert first.metainfo['img_shape'] == (160, 100)
    gt = first.gt_instances
    # the first rectangle whole, the second cut to 30 of its 40 columns (0.75 visible)
    np.testing.assert_allclose(gt.bboxes.numpy(), [[10, 10, 40, 40], [70, 60, 100, 80]])
    np.testing.assert_array_equal(gt.masks.areas, [900, 600])
    # the third keeps 5 of 40 columns (0.125 < 0.5): an ignore region, not a target
    np.testing.assert_allclose(first.ignored_instances.bboxes.numpy(), [[95, 100, 100, 130]])
    second = ds[1]['data_samples']
    np.testing.assert_allclose(
        second.gt_instances.bboxes.numpy(), [[0, 100, 35, 130]]
    )  # third, 35/40 visible
    np.testing.assert_allclose(second.ignored_instances.bboxes.numpy(), [[0, 60, 10, 80]])
    keep_all = TiledDataset(_dataset_cfg(root), tile_size=(160, 100), min_visible=0.0)
    assert len(keep_all[0]['data_samples'].gt_instances) == 3


def test_random_tiles_and_empty_tiles(root: Path) -> None:
    np.random.seed(0)
    ds = TiledDataset(_dataset_cfg(root), tile_size=64, mode='random', tiles_per_image=5)
    assert len(ds) == 5
    for i in range(5):
        sample = ds[i]['data_samples']
        assert sample.metainfo['img_shape'] == (64, 64)
        x0, y0, x1, y1 = ds.get_data_info(i)['tile']
        assert 0 <= x0 and x1 <= 240 and 0 <= y0 and y1 <= 160 and x1 - x0 == 64
        boxes = sample.gt_instances.bboxes.numpy()
        assert len(boxes) + len(sample.ignored_instances) > 0  # skip_empty redraws empty tiles
        assert (boxes >= 0).all() and (boxes <= 64).all()
    # sliding tiles over the whole image, empty ones kept: the bottom-right tile has nothing
    every = TiledDataset(_dataset_cfg(root), tile_size=80, skip_empty=False)
    assert len(every) == 6
    empty = every[5]['data_samples']
    assert len(empty.gt_instances) == 0 and every[5]['inputs'].shape == (3, 80, 80)
    with pytest.raises(ValueError, match='mode must be one of'):
        TiledDataset(_dataset_cfg(root), tile_size=64, mode='grid')
    with pytest.raises(ValueError, match="tiles_per_image=3 needs mode='random'"):
        TiledDataset(_dataset_cfg(root), tile_size=64, tiles_per_image=3)
    with pytest.raises(ValueError, match=r'min_visible must be in \[0, 1\]'):
        TiledDataset(_dataset_cfg(root), tile_size=64, min_visible=1.5)
