"""Config inheritance, overrides and consistency of every shipped config."""

from pathlib import Path

import pytest
from mmengine.config import Config, DictAction

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
SHIPPED = sorted(p for p in CONFIGS.rglob('*.py') if '_base_' not in p.parts)


def test_leaf_config_inherits_all_bases() -> None:
    cfg = Config.fromfile(CONFIGS / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py')
    for key in (
        'model',
        'train_dataloader',
        'val_dataloader',
        'test_dataloader',
        'val_evaluator',
        'test_evaluator',
        'optim_wrapper',
        'param_scheduler',
        'train_cfg',
        'val_cfg',
        'test_cfg',
        'default_hooks',
    ):
        assert key in cfg, key
    assert cfg.default_scope == 'instseg'
    assert cfg.model.backbone.depth == 50
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001
    )
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 500, False)
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    assert cfg.train_cfg.max_epochs == 12


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_child_overrides_merge_and_delete(tmp_path: Path) -> None:
    base = CONFIGS / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'
    child = _write(
        tmp_path / 'child.py',
        f"_base_ = ['{base}']\n"
        'model = dict(backbone=dict(depth=101))\n'
        "optim_wrapper = dict(_delete_=True, type='OptimWrapper', "
        "optimizer=dict(type='AdamW', lr=1e-4))\n",
    )
    cfg = Config.fromfile(child)
    assert cfg.model.backbone.depth == 101
    assert cfg.model.backbone.frozen_stages == 1  # merged, not replaced
    # _delete_ replaced the whole dict: SGD's momentum is gone
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4)


def test_cfg_options_nested_keys_and_lists() -> None:
    cfg = Config.fromfile(CONFIGS / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py')
    parser_action = DictAction(option_strings=['--cfg-options'], dest='cfg_options')
    import argparse

    ns = argparse.Namespace()
    parser_action(
        None,
        ns,
        [
            'model.roi_head.bbox_head.num_classes=3',
            'param_scheduler.1.milestones=[16,22]',
            'model.rpn_head.anchor_generator.ratios=[0.25,1.0,4.0]',
            'train_dataloader.batch_size=8',
        ],
    )
    cfg.merge_from_dict(ns.cfg_options)
    assert cfg.model.roi_head.bbox_head.num_classes == 3
    assert cfg.param_scheduler[1].milestones == [16, 22]
    assert cfg.model.rpn_head.anchor_generator.ratios == [0.25, 1.0, 4.0]
    assert cfg.train_dataloader.batch_size == 8


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_num_classes_agree_across_heads(path: Path) -> None:
    cfg = Config.fromfile(path)
    roi = cfg.model.get('roi_head', cfg.model)  # single-stage models hold the heads themselves
    heads = roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]
    masks = roi.get('mask_head', [])
    masks = masks if isinstance(masks, list) else [masks]
    counts = {h.num_classes for h in heads + masks}
    assert len(counts) == 1, counts
    classes = cfg.train_dataloader.dataset.get('metainfo', {}).get('classes')
    if classes is not None:
        assert counts == {len(classes)}
