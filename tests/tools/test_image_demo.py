"""tools/image_demo.py: overlays and JSON results for an image or a folder."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools.coco import COCO
from tool_helpers import load_tool


def test_folder_gives_one_overlay_and_one_json_per_image(trained, tmp_path: Path) -> None:
    tool = load_tool('image_demo.py')
    images = sorted((trained['data'] / 'val').glob('*.png'))
    with contextlib.redirect_stdout(io.StringIO()):
        records = tool.main([str(trained['data'] / 'val'), str(trained['cfg']),
                             str(trained['ckpt']), '--out-dir', str(tmp_path),
                             '--score-thr', '0.05', '--batch-size', '2'])  # fmt: skip
    assert len(records) == len(images)
    classes = ('ellipse', 'rectangle', 'triangle', 'ring')
    for image, record in zip(images, records, strict=True):
        overlay = cv2.imread(str(tmp_path / 'vis' / f'{image.stem}.png'))
        assert overlay.shape == cv2.imread(str(image)).shape
        saved = json.loads((tmp_path / 'preds' / f'{image.stem}.json').read_text())
        assert saved == record
        num = len(saved['scores'])
        assert num > 0 and min(saved['scores']) > 0.05
        assert len(saved['bboxes']) == len(saved['labels']) == len(saved['masks']) == num
        assert saved['class_names'] == [classes[i] for i in saved['labels']]
        assert mask_util.decode(saved['masks']).shape == (96, 96, num)


def test_json_masks_load_as_coco_results(trained, tmp_path: Path) -> None:
    tool = load_tool('image_demo.py')
    image = sorted((trained['data'] / 'val').glob('*.png'))[0]
    with contextlib.redirect_stdout(io.StringIO()):
        (record,) = tool.main([str(image), str(trained['cfg']), str(trained['ckpt']),
                               '--out-dir', str(tmp_path), '--score-thr', '0.05',
                               '--no-vis'])  # fmt: skip
    assert not (tmp_path / 'vis').exists()
    gt = COCO()
    gt.dataset = dict(
        images=[dict(id=1, height=record['height'], width=record['width'])],
        categories=[dict(id=i, name=str(i)) for i in range(4)],
        annotations=[],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        loaded = gt.loadRes(
            [
                dict(image_id=1, category_id=label, segmentation=mask, score=score)
                for label, mask, score in zip(
                    record['labels'], record['masks'], record['scores'], strict=True
                )
            ]
        )
    areas = [ann['area'] for ann in loaded.anns.values()]
    assert len(areas) == len(record['scores']) and all(a > 0 for a in areas)
    boxes = np.array(record['bboxes'])
    assert np.all(boxes[:, 2:] >= boxes[:, :2]) and boxes.max() <= 96


def test_wrong_inputs_are_named(trained, tmp_path: Path) -> None:
    tool = load_tool('image_demo.py')
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        tool.main([str(tmp_path / 'missing.jpg'), str(trained['cfg']), str(trained['ckpt']),
                   '--out-dir', str(tmp_path)])  # fmt: skip
    with pytest.raises(FileNotFoundError, match='No images'):
        tool.main([str(tmp_path), str(trained['cfg']), str(trained['ckpt']),
                   '--out-dir', str(tmp_path)])  # fmt: skip
    image = sorted((trained['data'] / 'val').glob('*.png'))[0]
    with pytest.raises(ValueError, match='does not fit the model'):
        tool.main([str(image), str(trained['cfg']), str(trained['ckpt']), '--out-dir',
                   str(tmp_path), '--cfg-options', 'model.backbone.depth=34'])  # fmt: skip


def test_tile_larger_than_the_image_gives_the_whole_image_records(trained, tmp_path: Path) -> None:
    tool = load_tool('image_demo.py')
    image = sorted((trained['data'] / 'val').glob('*.png'))[0]
    common = [str(image), str(trained['cfg']), str(trained['ckpt']), '--score-thr', '0.05']
    with contextlib.redirect_stdout(io.StringIO()):
        whole = tool.main([*common, '--out-dir', str(tmp_path / 'whole'), '--no-vis'])
        tiled = tool.main([*common, '--out-dir', str(tmp_path / 'tiled'), '--tile', '128',
                           '--tile-overlap', '32'])  # fmt: skip
    assert tiled == whole and len(whole[0]['scores']) > 0
    assert cv2.imread(str(tmp_path / 'tiled' / 'vis' / f'{image.stem}.png')).shape == (96, 96, 3)
