"""`benchmark.py data` runs on a tiny config and prints figures that parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from tool_helpers import load_tool


def _benchmark_data(*argv: str) -> dict:
    return load_tool('analysis_tools/benchmark.py').main(['data', *argv])


def _tiny_config(tmp_path: Path) -> Path:
    """3 images of 64x80 with 1, 2 and 3 square instances, and a train/val config on them."""
    (tmp_path / 'img').mkdir()
    images, anns = [], []
    for i in range(1, 4):
        cv2.imwrite(str(tmp_path / 'img' / f'{i}.png'), np.full((64, 80, 3), 40 * i, np.uint8))
        images.append(dict(id=i, file_name=f'{i}.png', height=64, width=80))
        for j in range(i):
            x = 4 + 20 * j
            anns.append(dict(id=10 * i + j, image_id=i, category_id=1, bbox=[x, 8, 12, 12],
                             area=144, iscrowd=0,
                             segmentation=[[x, 8, x + 12, 8, x + 12, 20, x, 20]]))  # fmt: skip
    coco = dict(images=images, annotations=anns, categories=[dict(id=1, name='box')])
    (tmp_path / 'ann.json').write_text(json.dumps(coco))
    cfg = tmp_path / 'tiny_data.py'
    cfg.write_text(f"""
default_scope = 'instseg'
dataset = dict(type='CocoDataset', data_root='{tmp_path}/', ann_file='ann.json',
               data_prefix=dict(img='img/'), metainfo=dict(classes=('box',)),
               serialize_data=False)
train_dataloader = dict(dataset=dict(dataset, pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]))
val_dataloader = dict(dataset=dict(dataset, test_mode=True, pipeline=[
    dict(type='LoadImageFromFile'), dict(type='PackDetInputs')]))
""")
    return cfg


@pytest.mark.parametrize('split', ['train', 'val'])
def test_benchmark_prints_parsable_figures(tmp_path: Path, split: str, capsys) -> None:
    cfg = _tiny_config(tmp_path)
    result = _benchmark_data(str(cfg), '--split', split, '--num-images', '4', '--warmup', '1')
    lines = result['lines']
    printed = capsys.readouterr().out
    assert all(line in printed for line in lines)
    figures = dict(line.split(': ', 1) for line in lines)
    assert figures['dataset'].startswith('3 images, built and parsed in')
    assert float(figures['images/s per worker']) == pytest.approx(result['images_per_s'], 0.01)
    assert re.fullmatch(r'mean [\d.]+ ms, max [\d.]+ ms', figures['time per image'])
    # Images 2, 3, 1, 2 are timed (index 0 was the warm-up).
    num_instances = '2, max 3' if split == 'train' else '0, max 0'
    assert figures['instances per image'] == f'mean {num_instances}'
    size = 72 * 96 if split == 'train' else 64 * 80
    assert figures['output image size'] == f'mean {size / 1e6:.2f} Mpixel'
    peak = re.fullmatch(
        r'mean ([\d.]+) MiB, max ([\d.]+) MiB', figures['peak traced memory per image']
    )
    mean_mib, max_mib = float(peak[1]), float(peak[2])
    assert 0 < mean_mib <= max_mib < 5
    assert re.fullmatch(r'[\d.]+ MiB \(grew -?\d+ MiB while timing\)', figures['process max RSS'])
    ratio = figures['peak / full-size bitmaps']
    if split == 'train':
        assert (
            0 < float(ratio.removeprefix('max ')) and 'KiB' in figures['peak growth per instance']
        )
    else:
        assert ratio == 'n/a (no masks)'


def test_benchmark_names_a_missing_split(tmp_path: Path) -> None:
    cfg = _tiny_config(tmp_path)
    with pytest.raises(KeyError, match='has no test_dataloader'):
        _benchmark_data(str(cfg), '--split', 'test')
