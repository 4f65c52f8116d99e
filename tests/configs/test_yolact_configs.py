"""Every shipped YOLACT config: its recipe values, its training pipeline on a generated image,
and one training iteration plus one prediction of its model (backbone and heads shrunk)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from test_cascade_configs import batch

from instseg.registry import MODELS, TRANSFORMS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
YOLACT = sorted(p for p in CONFIGS.rglob('yolact_*.py') if '_base_' not in p.parts)
R50 = CONFIGS / 'yolact' / 'yolact_r50_1xb8-55e_coco.py'
CH = 32  # shrunk FPN / head width

init_default_scope('instseg')


def test_every_required_config_ships() -> None:
    assert {str(p.relative_to(CONFIGS)) for p in YOLACT} == {
        'yolact/yolact_r50_1xb8-55e_coco.py',
        'yolact/yolact_r101_1xb8-55e_coco.py',
        'nuclei/yolact_r50.py',
        'demo/yolact_r18_demo.py',
    }


def test_coco_recipe_is_mmdetections() -> None:
    cfg = Config.fromfile(R50)
    model = cfg.model
    assert model.type == 'YOLACT' and model.backbone.depth == 50
    assert (model.neck.start_level, model.neck.add_extra_convs, model.neck.num_outs) == (
        1,
        'on_input',
        5,
    )
    anchors = model.bbox_head.anchor_generator
    assert anchors.ratios == [0.5, 1.0, 2.0] and anchors.octave_base_scale == 3
    assert [round(s, 3) for s in anchors.strides] == [7.971, 15.714, 30.556, 61.111, 110.0]
    assign = model.train_cfg.assigner
    assert (assign.pos_iou_thr, assign.neg_iou_thr, model.train_cfg.neg_pos_ratio) == (0.5, 0.4, 3)
    assert model.mask_head.loss_mask_weight == 6.125 and model.mask_head.num_protos == 32
    assert model.test_cfg == dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        mask_thr=0.5,
        iou_thr=0.5,
        top_k=200,
        max_per_img=100,
        mask_thr_binary=0.5,
    )
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4)
    assert cfg.train_cfg.max_epochs == 55 and cfg.param_scheduler[1].milestones == [20, 42, 49, 52]
    types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert types == [
        'LoadImageFromFile',
        'LoadAnnotations',
        'FilterAnnotations',
        'Expand',
        'MinIoURandomCrop',
        'Resize',
        'RandomFlip',
        'PhotoMetricDistortion',
        'PackDetInputs',
    ]
    assert (
        Config.fromfile(CONFIGS / 'yolact' / 'yolact_r101_1xb8-55e_coco.py').model.backbone.depth
        == 101
    )


def test_coco_training_pipeline_keeps_boxes_on_masks() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'datasets' / 'transforms'))
    from transform_samples import make_results

    cfg = Config.fromfile(R50)
    transforms = [TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline[2:-1]]
    np.random.seed(0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        results = make_results(rng, 6, 120, 160, kind='rle')
        for t in transforms:
            results = t(results)
        assert results['img'].shape == (550, 550, 3) and results['img_shape'] == (550, 550)
        masks, boxes = results['gt_masks'], results['gt_bboxes']
        assert (masks.height, masks.width) == (550, 550) and len(masks) == len(boxes) > 0
        np.testing.assert_array_equal(masks.get_bboxes(), boxes)


def shrink(model: Config) -> Config:
    """The same architecture at toy width: ResNet-18, 32-channel FPN and heads, 8 prototypes."""
    model.backbone.update(depth=18, init_cfg=None)
    model.neck.update(in_channels=None, out_channels=CH)
    model.bbox_head.update(in_channels=CH, feat_channels=CH, num_protos=8)
    model.mask_head.update(
        in_channels=CH,
        num_protos=8,
        proto_channels=(CH, None, CH, 8),
        proto_kernel_sizes=(3, -2, 3, 1),
    )
    return model


@pytest.mark.parametrize('path', YOLACT, ids=lambda p: p.name)
def test_config_trains_one_iteration_and_predicts(path: Path) -> None:
    cfg = Config.fromfile(path)
    torch.manual_seed(0)
    model = MODELS.build(shrink(cfg.model))
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = model.bbox_head.num_classes
    before = model.bbox_head.conv_cls.weight.detach().clone()

    model.train()
    log_vars = model.train_step(batch(num_classes, size=96), optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert {'loss_cls', 'loss_bbox', 'loss_mask', 'loss_segm'} <= set(log_vars)
    assert not torch.equal(before, model.bbox_head.conv_cls.weight)

    model.eval()
    (pred, _) = model.val_step(batch(num_classes, size=96))
    assert pred.pred_instances.masks.shape[1:] == (96, 96)
    assert len(pred.pred_instances) <= cfg.model.test_cfg.max_per_img
    assert {'bboxes', 'scores', 'labels', 'masks'} == set(pred.pred_instances.keys())
