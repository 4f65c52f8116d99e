"""Reading scalar logs, plotting curves, and the curve and visualization hooks."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop
from mmengine.structures import InstanceData

from instseg.engine.hooks import DetVisualizationHook, TrainingCurvesHook
from instseg.engine.hooks.visualization_hook import gt_at_original_size
from instseg.structures import BitmapMasks, DetDataSample
from instseg.visualization import DetLocalVisualizer, load_json_log, plot_panels, series_from_log
from instseg.visualization.curves import smooth

ROWS = [
    dict(lr=0.01, loss=2.0, loss_cls=1.0, time=0.5, epoch=1, iter=1, step=1),
    dict(lr=0.01, loss=1.0, loss_cls=0.5, time=0.3, epoch=1, iter=2, step=2),
    {'coco/segm_mAP': 0.1, 'coco/bbox_mAP': 0.2, 'step': 1},
    dict(lr=0.01, loss=0.5, loss_cls=0.2, time=0.3, epoch=2, iter=3, step=3),
    {'coco/segm_mAP': 0.3, 'coco/bbox_mAP': 0.4, 'step': 2},
]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / 'scalars.json'
    path.write_text('\n'.join(json.dumps(r) for r in ROWS) + '\n')
    return path


def test_log_splits_into_training_and_validation_rows(log: Path) -> None:
    train, val = load_json_log(str(log))
    assert [r['iter'] for r in train] == [1, 2, 3]
    assert [r['coco/segm_mAP'] for r in val] == [0.1, 0.3]


def test_series_by_iteration_for_losses_by_epoch_for_metrics(log: Path) -> None:
    series = series_from_log(str(log), ['loss', 'segm_mAP'])
    assert series['loss'] == ('iter', [1, 2, 3], [2.0, 1.0, 0.5])
    assert series['segm_mAP'] == ('epoch', [1, 2], [0.1, 0.3])
    with pytest.raises(KeyError, match=r"no key 'mAP'"):  # the suffix fits two keys
        series_from_log(str(log), ['mAP'])


def test_plot_panels_writes_800_by_300_per_panel(tmp_path: Path) -> None:
    out = tmp_path / 'sub' / 'c.png'
    panels = [('loss', 'iter', {'loss': ([1, 2], [1.0, 0.5])})] * 3
    plot_panels(panels, str(out))
    assert cv2.imread(str(out)).shape == (900, 800, 3)


def test_smooth_is_a_trailing_moving_average() -> None:
    assert smooth([1.0, 3.0, 5.0, 7.0], 2).tolist() == [1.0, 2.0, 4.0, 6.0]


def _train_runner(tmp_path: Path) -> SimpleNamespace:
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    return SimpleNamespace(work_dir=str(tmp_path), iter=0, epoch=0, train_loop=loop, rank=0)


def test_curves_hook_writes_loss_and_metric_pngs(tmp_path: Path) -> None:
    hook = TrainingCurvesHook()
    runner = _train_runner(tmp_path)
    for epoch in range(2):
        for _ in range(3):
            losses = dict(loss=torch.tensor(1.0, requires_grad=True), loss_cls=torch.tensor(0.5))
            hook.after_train_iter(runner, 0, outputs=losses)
            runner.iter += 1
        runner.epoch = epoch + 1
        hook.after_val_epoch(runner, {'coco/segm_mAP': 0.1 * epoch, 'coco/bbox_mAP_50': 0.5})
    hook.after_train(runner)
    assert cv2.imread(str(tmp_path / 'loss_curve.png')).shape == (600, 800, 3)
    assert cv2.imread(str(tmp_path / 'metric_curve.png')).shape == (300, 800, 3)
    assert hook._losses['loss'] == ([1, 2, 3, 4, 5, 6], [1.0] * 6)
    assert list(hook._metrics) == ['coco/segm_mAP']  # only *_mAP keys by default


def test_gt_is_scaled_back_to_the_original_image() -> None:
    sample = DetDataSample(metainfo=dict(scale_factor=(2.0, 2.0), ori_shape=(32, 32)))
    mask = np.zeros((1, 64, 64), dtype=np.uint8)
    mask[0, 20:40, 20:40] = 1
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[20.0, 20.0, 40.0, 40.0]]),
        labels=torch.tensor([0]),
        masks=BitmapMasks(mask, 64, 64),
    )
    scaled = gt_at_original_size(sample)
    assert scaled.gt_instances.bboxes.tolist() == [[10.0, 10.0, 20.0, 20.0]]
    assert scaled.gt_instances.masks.to_ndarray().shape == (1, 32, 32)
    assert sample.gt_instances.bboxes.tolist() == [[20.0, 20.0, 40.0, 40.0]]  # not modified


def test_visualization_hook_writes_test_overlays(tmp_path: Path) -> None:
    image_path = tmp_path / 'img.png'
    cv2.imwrite(str(image_path), np.full((48, 40, 3), 90, dtype=np.uint8))
    sample = DetDataSample(metainfo=dict(img_path=str(image_path), ori_shape=(48, 40)))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[5.0, 5.0, 20.0, 20.0]]),
        labels=torch.tensor([0]),
        scores=torch.tensor([0.9]),
    )
    runner = SimpleNamespace(
        work_dir=str(tmp_path), timestamp='t', visualizer=DetLocalVisualizer(name='hook_test')
    )
    hook = DetVisualizationHook(draw=True, test_out_dir='overlays')
    hook.after_test_iter(runner, 0, outputs=[sample])
    drawn = cv2.imread(str(tmp_path / 't' / 'overlays' / 'img.png'))
    assert drawn.shape == (48, 40, 3) and not (drawn == 90).all()
    DetVisualizationHook(draw=False, test_out_dir=str(tmp_path / 'off')).after_test_iter(
        runner, 0, outputs=[sample]
    )
    assert not (tmp_path / 'off').exists()
