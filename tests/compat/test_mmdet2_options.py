"""--cfg-options with 2.x keys on a 2.x config mean what they mean in the file (tools/train.py and
tools/test.py); one that lands nowhere is an error naming it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope

from instseg.compat.mmdet2 import Config2xError
from instseg.engine.config import load_config
from instseg.registry import MODELS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_mmdet2_train import write_tiny_2x  # noqa: E402

init_default_scope('instseg')

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / 'tests' / 'data' / 'configs_2x'
R50_2X = FIXTURES / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'
SWIN_2X = FIXTURES / 'swin' / 'mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
sys.path.insert(0, str(ROOT / 'tests' / 'tools'))
from tool_helpers import load_tool  # noqa: E402


def test_swin_readme_command_line() -> None:
    # the Swin Transformer detection repository's README: --cfg-options model.pretrained=PATH
    # model.backbone.use_checkpoint=True
    cfg = load_config(
        str(SWIN_2X),
        {'model.pretrained': 'weights/swin_tiny.pth', 'model.backbone.use_checkpoint': True},
    )
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint='weights/swin_tiny.pth'
    )
    assert cfg.model.backbone.with_cp is True
    assert 'pretrained' not in cfg.model and 'use_checkpoint' not in cfg.model.backbone
    MODELS.build(dict(cfg.model.backbone, init_cfg=None, depths=[1, 1, 1, 1]))  # it builds


def test_2x_keys_translate_like_the_file() -> None:
    cfg = load_config(
        str(R50_2X),
        {
            'optimizer.lr': 0.5,
            'data.samples_per_gpu': 1,
            'data.workers_per_gpu': 0,
            'lr_config.step': [16, 22],
            'lr_config.warmup_iters': 100,
            'runner.max_epochs': 24,
            'evaluation.interval': 2,
            'checkpoint_config.interval': 3,
        },
    )
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.train_dataloader.batch_size == 1 and cfg.train_dataloader.num_workers == 0
    assert cfg.param_scheduler == [
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
        dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1),
    ]
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=24, val_interval=2)
    assert cfg.default_hooks.checkpoint.interval == 3
    for key in ('optimizer', 'data', 'lr_config', 'runner', 'evaluation', 'checkpoint_config'):
        assert key not in cfg, key  # nothing stray in the run's config


def test_optimizer_config_and_total_epochs(tmp_path: Path) -> None:
    leaf = tmp_path / 'old_style.py'  # total_epochs without a runner: mmdetection 2.0's style
    leaf.write_text(f"_base_ = ['{R50_2X}']\nrunner = None\ntotal_epochs = 12\n")
    cfg = load_config(
        str(leaf),
        {'total_epochs': 6, 'optimizer_config.grad_clip': None, 'optimizer.momentum': 0.8},
    )
    assert cfg.train_cfg.max_epochs == 6 and cfg.param_scheduler[-1].end == 6
    assert cfg.optim_wrapper.optimizer.momentum == 0.8 and 'clip_grad' not in cfg.optim_wrapper


def test_native_keys_still_apply_after_translation() -> None:
    cfg = load_config(
        str(R50_2X), {'optim_wrapper.optimizer.lr': 0.01, 'param_scheduler.1.milestones': [7]}
    )
    assert cfg.optim_wrapper.optimizer.lr == 0.01 and cfg.param_scheduler[1].milestones == [7]


@pytest.mark.parametrize(
    'key, value, message',
    [
        ('data.sample_per_gpu', 1, 'this key lands nowhere'),  # misspelt
        ('evaluation.intervall', 2, 'this key lands nowhere'),
        ('total_epochs', 6, 'this key lands nowhere'),  # the config's runner sets the length
        # an EpochBasedRunner has no max_iters: the translation itself refuses it
        ('runner.max_iters', 100, 'not a 2.x option instseg can translate'),
    ],
)
def test_option_that_lands_nowhere_is_an_error(key: str, value, message: str) -> None:
    with pytest.raises(Config2xError, match=rf'{key}: {message}'):
        load_config(str(R50_2X), {key: value})


def test_test_tool_applies_2x_keys(tmp_path: Path) -> None:
    cfg_path = write_tiny_2x(tmp_path)
    cfg = load_config(str(cfg_path))
    checkpoint = tmp_path / 'tiny.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, checkpoint)
    argv = [str(cfg_path), str(checkpoint), '--work-dir', str(tmp_path / 'test')]
    # 2.x evaluation.metric reaches the test evaluator: box AP only
    test_tool = load_tool('test.py')
    metrics = test_tool.main([*argv, '--cfg-options', 'evaluation.metric=bbox'])
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' not in metrics
    with pytest.raises(Config2xError, match=r'data\.tset\.ann_file: this key lands nowhere'):
        test_tool.main([*argv, '--cfg-options', 'data.tset.ann_file=x.json'])
