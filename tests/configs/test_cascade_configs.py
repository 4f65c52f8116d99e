"""Every shipped Cascade Mask R-CNN config: its recipe values, and one training iteration plus one
prediction of its model (backbone and heads shrunk) with its own optim wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from instseg.registry import MODELS
from instseg.structures import BitmapMasks, DetDataSample

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
CASCADE = sorted(p for p in CONFIGS.rglob('cascade_*.py') if '_base_' not in p.parts)
SWIN_T = CONFIGS / 'swin' / 'cascade_mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
SWIN_T_FP16 = CONFIGS / 'swin' / 'cascade_mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py'
SWIN_S_FP16 = CONFIGS / 'swin' / 'cascade_mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py'
NUCLEI = CONFIGS / 'nuclei' / 'cascade_mask_rcnn_swin_s.py'
STDS = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
CH = 32  # shrunk FPN / head width

init_default_scope('instseg')


def test_every_required_config_ships() -> None:
    names = {str(p.relative_to(CONFIGS)) for p in CASCADE}
    assert {
        'cascade_rcnn/cascade_mask_rcnn_r50_fpn_1x_coco.py',
        'swin/cascade_mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
        'swin/cascade_mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py',
        'swin/cascade_mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py',
        'nuclei/cascade_mask_rcnn_swin_s.py',
        'demo/cascade_mask_rcnn_r18_fpn_demo.py',
    } <= names


@pytest.mark.parametrize('path', CASCADE, ids=lambda p: p.name)
def test_cascade_recipe(path: Path) -> None:
    model = Config.fromfile(path).model
    roi = model.roi_head
    assert model.type == 'CascadeRCNN' and roi.type == 'CascadeRoIHead'
    assert roi.num_stages == 3 and roi.stage_loss_weights == [1, 0.5, 0.25]
    assert [h.bbox_coder.target_stds for h in roi.bbox_head] == STDS
    assert [r.assigner.pos_iou_thr for r in model.train_cfg.rcnn] == [0.5, 0.6, 0.7]
    assert all(r.sampler.add_gt_as_proposals for r in model.train_cfg.rcnn)


@pytest.mark.parametrize('path', [SWIN_T, SWIN_T_FP16, SWIN_S_FP16, NUCLEI], ids=lambda p: p.name)
def test_swin_recipe(path: Path) -> None:
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    assert backbone.type == 'SwinTransformer' and backbone.embed_dims == 96
    assert backbone.depths == ([2, 2, 6, 2] if 'swin-t' in path.name else [2, 2, 18, 2])
    assert backbone.init_cfg.type == 'Pretrained'
    assert not backbone.init_cfg.checkpoint.startswith(('http://', 'https://'))
    for head in cfg.model.roi_head.bbox_head:
        assert head.type == 'Shared4Conv1FCBBoxHead' and head.norm_cfg.type == 'SyncBN'
        assert head.reg_decoded_bbox and head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
    wrapper = cfg.optim_wrapper
    assert wrapper.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert set(wrapper.paramwise_cfg.custom_keys) == {
        'absolute_pos_embed',
        'relative_position_bias_table',
        'norm',
    }
    assert (wrapper.type == 'AmpOptimWrapper') == ('fp16' in path.name)
    if 'fp16' in path.name:
        assert wrapper.loss_scale == 512.0
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and not warmup.by_epoch
    assert steps.milestones == [27, 33] and cfg.train_cfg.max_epochs == 36
    if path != NUCLEI:
        assert warmup.end == 1000
        assert 'RandomChoice' in [t.type for t in cfg.train_dataloader.dataset.pipeline]


def test_nuclei_recipe() -> None:
    cfg = Config.fromfile(NUCLEI)
    assert cfg.train_dataloader.dataset.metainfo.classes == ('nucleus',)
    heads = [*cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head]
    assert {h.num_classes for h in heads} == {1}
    assert cfg.model.test_cfg.rcnn.max_per_img == 1000
    assert cfg.model.test_cfg.rpn.max_per_img >= 1000
    assert max(cfg.val_evaluator.proposal_nums) == 1000


def shrink(model: Config) -> Config:
    """The same architecture at toy width: 32-channel FPN and heads, tiny backbone, no weights."""
    backbone = model.backbone
    backbone.init_cfg = None
    if backbone.type == 'ResNet':
        backbone.update(depth=18, frozen_stages=-1, norm_eval=False)
        model.neck.in_channels = [64, 128, 256, 512]
    else:
        backbone.update(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2])
        model.neck.in_channels = [16, 32, 64, 128]
    model.neck.out_channels = CH
    model.rpn_head.update(in_channels=CH, feat_channels=CH)
    roi = model.roi_head
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractors = roi[key] if isinstance(roi[key], list) else [roi[key]]
        for extractor in extractors:
            extractor.out_channels = CH
    for head in roi.bbox_head:
        head.update(in_channels=CH, fc_out_channels=64)
        if head.type != 'Shared2FCBBoxHead':
            head.conv_out_channels = CH
    roi.mask_head.update(num_convs=1, in_channels=CH, conv_out_channels=CH)
    for stage in model.train_cfg.rcnn:
        stage.sampler.num = 64
    return model


def batch(num_classes: int, size: int = 64) -> dict:
    """Two images: one with two instances, one without any."""
    samples = []
    for boxes in ([[6, 8, 40, 44], [30, 20, 60, 58]], []):
        masks = np.zeros((len(boxes), size, size), np.uint8)
        for m, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
            m[y1:y2, x1:x2] = 1
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0), flip=False
            )
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.arange(len(boxes)) % num_classes,
            masks=BitmapMasks(masks, size, size),
        )
        samples.append(sample)
    images = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in samples]
    return dict(inputs=images, data_samples=samples)


@pytest.mark.parametrize('path', CASCADE, ids=lambda p: p.name)
def test_config_trains_one_iteration_and_predicts(path: Path) -> None:
    cfg = Config.fromfile(path)
    model = MODELS.build(shrink(cfg.model))
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':  # instseg's: bfloat16 autocast on CPU
        assert optim_wrapper.loss_scaler._init_scale == 512.0
    num_classes = model.roi_head.bbox_head[0].num_classes
    data = batch(num_classes)
    before = model.roi_head.bbox_head[2].fc_cls.weight.detach().clone()

    model.train()
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert {f's{i}.loss_mask' for i in range(3)} <= set(log_vars)
    assert not torch.equal(before, model.roi_head.bbox_head[2].fc_cls.weight)

    model.eval()
    (pred, _) = model.val_step(batch(num_classes))
    assert pred.pred_instances.masks.shape[1:] == (64, 64)
    assert len(pred.pred_instances) <= cfg.model.test_cfg.rcnn.max_per_img


@pytest.mark.parametrize('path', [SWIN_T, NUCLEI], ids=lambda p: p.name)
def test_swin_param_groups_skip_decay_on_norms_and_position_tables(path: Path) -> None:
    cfg = Config.fromfile(path)
    model = MODELS.build(shrink(cfg.model))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {
        names[id(p)]: g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']
    }
    tables = [n for n in decay if 'relative_position_bias_table' in n]
    norms = [n for n in decay if 'norm' in n]
    assert tables and norms
    assert all(decay[n] == 0.0 for n in tables + norms)
    assert decay['roi_head.bbox_head.0.fc_cls.weight'] == pytest.approx(0.05)
