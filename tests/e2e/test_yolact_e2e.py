"""YOLACT end to end: the demo config learns generated shapes, is evaluated with CocoMetric, and
its trained model serves inference_detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mmengine.config import Config
from tiny import DEMO, ROOT, write_tiny_config

from instseg.apis import inference_detector
from instseg.engine import Runner

YOLACT_DEMO = ROOT / 'configs' / 'demo' / 'yolact_r18_demo.py'

# Measured on the training images after 160 iterations (8 images, batch 2, 96 px, seed 0):
# bbox mAP 0.75, segm mAP 0.40 (segm mAP_50 0.88), about 40 s on 1 thread. An untrained model
# (or one whose masks are cropped by the wrong boxes) scores about 0.
MIN_BBOX_MAP = 0.45
MIN_SEGM_MAP = 0.25


def test_yolact_overfits_a_handful_of_images(tmp_path: Path) -> None:
    cfg_path = write_tiny_config(
        tmp_path,
        num_train=8,
        num_val=2,
        epochs=40,
        extra="""
# evaluate on the training images themselves: this measures fitting, not generalisation
val_dataloader = dict(dataset=dict(ann_file='annotations/instances_train.json',
                                   data_prefix=dict(img='train/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_train.json')
train_cfg = dict(val_begin=1000)  # evaluated once, below
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs')]))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=-1, save_best=None))
""",
    )
    # the tiny config inherits the Mask R-CNN demo; point it at the YOLACT demo instead
    base = cfg_path.parent / 'tiny_demo.py'
    base.write_text(base.read_text().replace(str(DEMO), str(YOLACT_DEMO)))
    cfg = Config.fromfile(cfg_path)
    assert cfg.model.type == 'YOLACT'
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    logged = runner.message_hub.log_scalars
    for name in ('loss_cls', 'loss_bbox', 'loss_mask', 'loss_segm'):
        assert np.isfinite(logged[f'train/{name}'].current()), name

    metrics = runner.val_loop.run()
    assert metrics['coco/segm_mAP'] >= MIN_SEGM_MAP, metrics
    assert metrics['coco/bbox_mAP'] >= MIN_BBOX_MAP, metrics

    model = runner.model
    model.cfg = cfg
    image = sorted((tmp_path / 'data' / 'train').glob('*.png'))[0]
    result = inference_detector(model, str(image))
    pred = result.pred_instances
    assert len(pred) > 0 and pred.scores.max() > 0.5
    assert tuple(pred.masks.shape) == (len(pred), 96, 96)
