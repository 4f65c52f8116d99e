"""Loading whole-detector weights: conversion on the fly, class-count changes, mismatches reported
by name, and the Runner's ``load_checkpoint``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from e2e.tiny import write_tiny_config
from mmengine.config import Config

from instseg.checkpoint.load import load_detector_state, load_detector_weights
from instseg.engine import Runner
from instseg.registry import MODELS

BASE = (
    Path(__file__).resolve().parents[2] / 'configs' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'
)
CLASS_SPECIFIC = [
    'roi_head.bbox_head.fc_cls.weight',
    'roi_head.bbox_head.fc_cls.bias',
    'roi_head.bbox_head.fc_reg.weight',
    'roi_head.bbox_head.fc_reg.bias',
    'roi_head.mask_head.conv_logits.weight',
    'roi_head.mask_head.conv_logits.bias',
]


def _tiny(num_classes: int = 80, fc: int = 64) -> torch.nn.Module:
    cfg = Config.fromfile(BASE)
    cfg.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(depth=18),
                neck=dict(in_channels=None, out_channels=16),
                rpn_head=dict(in_channels=16, feat_channels=16),
                roi_head=dict(
                    bbox_roi_extractor=dict(out_channels=16),
                    bbox_head=dict(in_channels=16, fc_out_channels=fc, num_classes=num_classes),
                    mask_roi_extractor=dict(out_channels=16),
                    mask_head=dict(
                        num_convs=1, in_channels=16, conv_out_channels=16, num_classes=num_classes
                    ),
                ),
            )
        )
    )
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def coco_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return _tiny(80)


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger='instseg.test_weight_loading')
    return logging.getLogger('instseg.test_weight_loading')


def test_mmdet3_checkpoint_file_round_trips(coco_model, tmp_path: Path, logger) -> None:
    path = tmp_path / 'epoch_12.pth'
    meta = dict(mmdet_version='3.3.0', epoch=12, dataset_meta=dict(classes=('person',) * 80))
    torch.save(dict(state_dict=coco_model.state_dict(), meta=meta), path)
    fresh = _tiny(80)
    checkpoint, report = load_detector_weights(fresh, str(path), logger=logger)
    assert checkpoint['meta']['epoch'] == 12
    assert (report.format, report.missing, report.unexpected) == ('mmdet', [], [])
    for key, value in coco_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_fewer_classes_reinitialise_class_specific_layers(coco_model, logger, caplog) -> None:
    nuclei = _tiny(1)
    before = {k: v.clone() for k, v in nuclei.state_dict().items()}
    report = load_detector_state(
        nuclei, dict(state_dict=coco_model.state_dict()), 'coco.pth', logger=logger
    )
    assert sorted(report.reinitialized) == sorted(CLASS_SPECIFIC)
    assert (report.missing, report.unexpected) == ([], [])
    after = nuclei.state_dict()
    assert after['roi_head.bbox_head.fc_cls.weight'].shape == (2, 64)
    for key in CLASS_SPECIFIC:
        assert torch.equal(after[key], before[key]), key
    shared = 'roi_head.bbox_head.shared_fcs.1.weight'
    assert torch.equal(after[shared], coco_model.state_dict()[shared])
    warning = next(r.getMessage() for r in caplog.records if 'number of classes' in r.getMessage())
    for key in CLASS_SPECIFIC:
        assert key in warning


def test_other_shape_mismatch_fails_naming_key_and_shapes(coco_model) -> None:
    wider = _tiny(80, fc=128)
    with pytest.raises(ValueError) as err:
        load_detector_state(wider, coco_model.state_dict(), 'coco.pth', logger='silent')
    message = str(err.value)
    assert 'coco.pth' in message
    assert (
        'roi_head.bbox_head.shared_fcs.0.weight: checkpoint (64, 784), model (128, 784)' in message
    )
    # fc_cls is class-specific, but here its input width differs: not a class-count change
    assert 'roi_head.bbox_head.fc_cls.weight: checkpoint (81, 64), model (81, 128)' in message


def test_missing_and_unexpected_keys_are_reported_by_name(coco_model, logger, caplog) -> None:
    state = dict(coco_model.state_dict())
    del state['rpn_head.rpn_cls.bias']
    state['roi_head.bbox_head.fc_extra.weight'] = torch.zeros(3)
    fresh = _tiny(80)
    report = load_detector_state(fresh, state, 'partial.pth', logger=logger)
    assert report.missing == ['rpn_head.rpn_cls.bias']
    assert report.unexpected == ['roi_head.bbox_head.fc_extra.weight']
    text = caplog.text
    assert 'rpn_head.rpn_cls.bias' in text and 'roi_head.bbox_head.fc_extra.weight' in text
    with pytest.raises(RuntimeError, match=r'missing keys: rpn_head\.rpn_cls\.bias; unexpected'):
        load_detector_state(fresh, state, 'partial.pth', strict=True, logger='silent')


def test_runner_load_checkpoint_converts_and_returns_the_checkpoint(tmp_path: Path) -> None:
    cfg = Config.fromfile(write_tiny_config(tmp_path))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'test_weight_loading_runner'  # its own logger and visualizer
    runner = Runner.from_cfg(cfg)
    torch.manual_seed(1)
    trained = MODELS.build(cfg.model)
    # as mmdetection 2.x writes it from a DDP model
    state = {f'module.{k}': v for k, v in trained.state_dict().items()}
    path = tmp_path / 'mmdet2.pth'
    torch.save(dict(state_dict=state, meta=dict(mmdet_version='2.25.0', epoch=3)), path)
    checkpoint = runner.load_checkpoint(str(path))
    assert checkpoint['meta']['epoch'] == 3
    key = 'roi_head.mask_head.conv_logits.weight'
    assert torch.equal(runner.model.state_dict()[key], trained.state_dict()[key])


def test_backbone_only_checkpoint_loads_into_the_backbone(coco_model, logger) -> None:
    # e.g. torchvision's ImageNet resnet18.pth: ResNet keys without a prefix, plus its classifier
    backbone = {
        k[len('backbone.') :]: v
        for k, v in coco_model.state_dict().items()
        if k.startswith('backbone.')
    }
    backbone['fc.weight'] = torch.zeros(1000, 512)
    fresh = _tiny(80)
    report = load_detector_state(fresh, backbone, 'resnet18.pth', logger=logger)
    assert report.format == 'backbone'
    assert report.unexpected == ['backbone.fc.weight']
    assert 'neck.lateral_convs.0.conv.weight' in report.missing
    assert not any(k.startswith('backbone.') for k in report.missing)
    key = 'backbone.layer4.1.conv2.weight'
    assert torch.equal(fresh.state_dict()[key], coco_model.state_dict()[key])
