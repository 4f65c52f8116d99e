"""compare_training.py: both models trained by one recipe, scored by one COCO evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tool_helpers import load_tool, run_tool

from instseg.datasets.demo_shapes import generate_shapes_dataset

TINY_RECIPE = [
    'short_side=64', 'long_side=96', 'iters=3', 'warmup_iters=1', 'steps=[2]',
    'rcnn_samples=16', 'rpn_train_pre_nms=50', 'rpn_train_post_nms=50',
    'rpn_test_proposals=20', 'max_dets=10', 'workers=0',
]  # fmt: skip


def test_trains_both_and_prints_one_table(tmp_path: Path) -> None:
    generate_shapes_dataset(tmp_path / 'data', num_train=4, num_val=2, image_size=64, seed=0)
    work = tmp_path / 'work'
    proc = run_tool(
        'analysis_tools/compare_training.py',
        '--data', str(tmp_path / 'data'),
        '--ann-train', 'annotations/instances_train.json', '--img-train', 'train',
        '--ann-val', 'annotations/instances_val.json', '--img-val', 'val',
        '--classes', 'ellipse', 'rectangle',
        '--recipe', *TINY_RECIPE, '--threads', '1', '--work-dir', str(work),
        cwd=tmp_path,
    )  # fmt: skip
    assert '| torchvision | 1 |' in proc.stdout and '| instseg | 1 |' in proc.stdout
    summary = json.loads((work / 'summary.json').read_text())
    assert summary['recipe']['iters'] == 3
    for row in ('torchvision', 'instseg'):
        (result,) = summary['rows'][row]
        assert set(result) >= {'bbox_mAP', 'bbox_mAP50', 'segm_mAP', 'segm_mAP50'}
        assert all(0.0 <= result[key] <= 1.0 for key in ('bbox_mAP', 'segm_mAP'))
    # the restricted annotation files keep only the two classes asked for
    val = json.loads((work / 'annotations' / 'val.json').read_text())
    assert [c['name'] for c in val['categories']] == ['ellipse', 'rectangle']
    # the instseg run is a real instseg config with the recipe's values
    (dumped,) = (work / 'instseg_seed0').glob('*.py')
    assert 'max_iters=3' in dumped.read_text()


def test_rejects_unknown_recipe_key_and_class(tmp_path: Path) -> None:
    tool = load_tool('analysis_tools/compare_training.py')
    generate_shapes_dataset(tmp_path / 'data', num_train=2, num_val=1, image_size=64, seed=0)
    common = ['--data', str(tmp_path / 'data'), '--ann-train', 'annotations/instances_train.json',
              '--ann-val', 'annotations/instances_val.json',
              '--work-dir', str(tmp_path / 'w')]  # fmt: skip
    with pytest.raises(SystemExit, match="unknown key 'lr_rate'"):
        tool.main([*common, '--recipe', 'lr_rate=0.1'])
    with pytest.raises(SystemExit, match="no categories named \\['hexagon'\\]"):
        tool.main([*common, '--classes', 'hexagon'])
