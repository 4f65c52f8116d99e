"""A translated 2.x config trains (in process and through tools/train.py); native configs pass
through load_config untouched; --cfg-options apply to the translation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from instseg.compat.mmdet2.runtime import DEFAULT_ENV, DEFAULT_HOOKS, DEFAULT_VISUALIZER
from instseg.datasets import SHAPE_CLASSES, generate_shapes_dataset
from instseg.engine.config import load_config
from instseg.registry import DATASETS, MODELS

init_default_scope('instseg')

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
R50_2X = ROOT / 'tests' / 'data' / 'configs_2x' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'


def write_tiny_2x(tmp_path: Path) -> Path:
    """The 2.x Mask R-CNN R50 fixture shrunk in 2.x dialect: ResNet-18, 64-channel heads, 2
    iterations of an IterBasedRunner on 64 px generated shapes."""
    data = tmp_path / 'data'
    generate_shapes_dataset(data, num_train=2, num_val=2, image_size=64, seed=0)
    cfg = tmp_path / 'tiny_2x.py'
    cfg.write_text(
        f"""_base_ = ['{R50_2X}']
classes = {SHAPE_CLASSES!r}
model = dict(
    pretrained=None,
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128, num_classes=4),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(num_convs=1, in_channels=64, conv_out_channels=64, num_classes=4)))
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', img_scale=(96, 64), keep_ratio=True),
    dict(type='RandomFlip', flip_ratio=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=32),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_masks'])]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiScaleFlipAug', img_scale=(96, 64), flip=False, transforms=[
        dict(type='Resize', keep_ratio=True), dict(type='RandomFlip'),
        dict(type='Normalize', **img_norm_cfg), dict(type='Pad', size_divisor=32),
        dict(type='ImageToTensor', keys=['img']), dict(type='Collect', keys=['img'])])]
data_root = '{data}/'
data = dict(
    samples_per_gpu=2, workers_per_gpu=0,
    train=dict(classes=classes, ann_file=data_root + 'annotations/instances_train.json',
               img_prefix=data_root + 'train/', pipeline=train_pipeline),
    val=dict(classes=classes, ann_file=data_root + 'annotations/instances_val.json',
             img_prefix=data_root + 'val/', pipeline=test_pipeline),
    test=dict(classes=classes, ann_file=data_root + 'annotations/instances_val.json',
              img_prefix=data_root + 'val/', pipeline=test_pipeline))
optimizer = dict(lr=0.01)
runner = dict(_delete_=True, type='IterBasedRunner', max_iters=2)
evaluation = dict(interval=2, metric=['bbox', 'segm'])
checkpoint_config = dict(interval=2)
log_config = dict(interval=1)
"""
    )
    return cfg


def test_translated_mask_rcnn_trains_a_step(tmp_path: Path) -> None:
    cfg = load_config(str(write_tiny_2x(tmp_path)))
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    assert cfg.model.backbone.depth == 18 and 'init_cfg' not in cfg.model.backbone
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert dataset.metainfo['classes'] == SHAPE_CLASSES
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert max(batch['inputs'][0].shape[1:]) <= 96  # the translated Resize ran
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert wrapper.optimizer.param_groups[0]['lr'] == 0.01
    before = model.roi_head.mask_head.conv_logits.weight.detach().clone()
    losses = model.train_step(batch, wrapper)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    assert all(math.isfinite(float(v.detach())) for v in losses.values())
    assert not torch.equal(before, model.roi_head.mask_head.conv_logits.weight)


def test_train_tool_runs_a_2x_config(tmp_path: Path) -> None:
    cfg = write_tiny_2x(tmp_path)
    work_dir = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'train.py'), str(cfg), '--work-dir', str(work_dir)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert 'is an mmdetection 2.x config' in output
    assert (work_dir / 'iter_2.pth').is_file()
    assert 'Iter(train) [2/2]' in output and 'coco/segm_mAP' in output  # validated at the end
    # the run's own copy of the config is the native translation, and it loads back as such
    dumped = Config.fromfile(work_dir / 'tiny_2x.py')
    assert 'data' not in dumped and dumped.train_cfg.type == 'IterBasedTrainLoop'


def test_cfg_options_apply_after_translation() -> None:
    cfg = load_config(
        str(R50_2X),
        cfg_options={
            'optim_wrapper.optimizer.lr': 0.01,
            'train_dataloader.batch_size': 8,
            'param_scheduler.1.milestones': [16, 22],
            'model.roi_head.bbox_head.num_classes': 3,
        },
    )
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.param_scheduler[1].milestones == [16, 22]
    assert cfg.model.roi_head.bbox_head.num_classes == 3
    assert 'lr_config' not in cfg and 'data' not in cfg


@pytest.mark.parametrize(
    'path',
    [
        'mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py',
        'demo/mask_rcnn_r18_fpn_demo.py',
        'swin/cascade_mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py',
    ],
)
def test_native_configs_pass_through_untouched(path: str) -> None:
    loaded = load_config(str(CONFIGS / path), work_dir='w')
    expected = Config.fromfile(CONFIGS / path)
    expected.work_dir = 'w'
    assert loaded.to_dict() == expected.to_dict()
    assert loaded.text == expected.text


def test_2x_leaf_on_a_native_base(tmp_path: Path) -> None:
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(
        f"_base_ = ['{CONFIGS / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'}']\n"
        "optimizer = dict(type='AdamW', lr=1e-4, weight_decay=0.05)\n"
        "lr_config = dict(policy='step', step=[9])\n"
        'fp16 = dict(loss_scale=512.0)\n'
        'checkpoint_config = dict(interval=2)\n'
    )
    cfg = load_config(str(leaf))
    # the optimizer of another type replaces the native one; fp16 wraps it
    assert cfg.optim_wrapper == dict(
        type='AmpOptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        loss_scale=512.0,
    )
    # the schedule's length comes from the native train_cfg (12 epochs)
    assert cfg.param_scheduler == [
        dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[9], gamma=0.1)
    ]
    assert cfg.default_hooks.checkpoint.interval == 2
    assert cfg.default_hooks.checkpoint.save_best == 'coco/segm_mAP'  # native settings stay
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'


def test_partial_2x_optimizer_updates_the_native_one(tmp_path: Path) -> None:
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(
        f"_base_ = ['{CONFIGS / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'}']\n"
        'optimizer = dict(lr=0.01)\n'
        'optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))\n'
    )
    cfg = load_config(str(leaf))
    assert cfg.optim_wrapper == dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
        clip_grad=dict(max_norm=35, norm_type=2),
    )


def test_runtime_defaults_follow_the_native_default_runtime() -> None:
    """A 2.x config without native runtime keys gets configs/_base_/default_runtime.py's."""
    native = Config.fromfile(CONFIGS / '_base_' / 'default_runtime.py').to_dict()
    hooks = native['default_hooks']
    for name in ('save_best', 'rule'):  # a 2.x config keeps a best checkpoint only if it asks
        hooks['checkpoint'].pop(name)
    assert hooks == DEFAULT_HOOKS
    assert native['env_cfg'] == DEFAULT_ENV
    assert native['visualizer']['type'] == DEFAULT_VISUALIZER
    assert native['log_processor'] == load_config(str(R50_2X)).log_processor
