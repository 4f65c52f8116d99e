"""The model can learn: overfitting a handful of generated images must give a high segm mAP."""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config
from tiny import write_tiny_config

from instseg.engine import Runner

# Measured on the training images after 160 iterations (8 images, batch 2, 96 px, seed 0):
# bbox mAP 0.63, segm mAP 0.44 (segm mAP_50 above 0.9). An untrained or broken model (for example,
# masks cut from the wrong boxes, or labels shifted by one) scores below 0.1.
MIN_BBOX_MAP = 0.45
MIN_SEGM_MAP = 0.30


def test_overfits_a_handful_of_images(tmp_path: Path) -> None:
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
train_cfg = dict(val_interval=40)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs')]))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=-1, save_best=None))
""",
    )
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    assert metrics['coco/segm_mAP'] >= MIN_SEGM_MAP, metrics
    assert metrics['coco/bbox_mAP'] >= MIN_BBOX_MAP, metrics
