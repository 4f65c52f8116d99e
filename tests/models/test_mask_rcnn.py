"""Mask R-CNN end to end at the module level: losses, empty ground truth, predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from instseg.registry import MODELS
from instseg.structures import DetDataSample, PolygonMasks, PredictedMasks, RLEMasks

BASE = 'configs/_base_/models/mask_rcnn_r50_fpn.py'


def tiny_model_cfg(num_classes: int = 3) -> dict:
    cfg = Config.fromfile(BASE).model
    cfg.backbone.update(depth=18, frozen_stages=-1, norm_eval=False)
    cfg.neck.update(in_channels=None, out_channels=32)
    cfg.rpn_head.update(in_channels=32, feat_channels=32)
    cfg.roi_head.bbox_roi_extractor.out_channels = 32
    cfg.roi_head.mask_roi_extractor.out_channels = 32
    cfg.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64, num_classes=num_classes)
    cfg.roi_head.mask_head.update(
        num_convs=1, in_channels=32, conv_out_channels=32, num_classes=num_classes
    )
    return cfg


def make_sample(
    h: int, w: int, boxes: list[list[float]], labels: list[int], rle: bool
) -> DetDataSample:
    sample = DetDataSample(
        metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w))
    )
    polys = [
        [np.array([x1, y1, x2, y1, x2, y2, x1, y2], dtype=np.float64)] for x1, y1, x2, y2 in boxes
    ]
    masks = PolygonMasks(polys, h, w)
    if rle:
        masks = RLEMasks.from_polygons(masks)
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long),
        masks=masks,
    )
    return sample


@pytest.fixture
def model() -> torch.nn.Module:
    model = MODELS.build(tiny_model_cfg())
    model.init_weights()
    return model


def _batch(model, samples, h=64, w=96):
    images = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8) for _ in samples]
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)


def test_loss_keys_finite_and_backward(model) -> None:
    samples = [
        make_sample(64, 96, [[10, 10, 40, 50], [50, 5, 90, 30]], [0, 2], rle=True),
        make_sample(64, 96, [[20, 20, 60, 60]], [1], rle=False),
    ]
    data = _batch(model, samples)
    losses = model(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask', 'acc'} <= set(
        losses
    )
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.roi_head.mask_head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert losses['loss_mask'] > 0 and losses['loss_bbox'] > 0


def test_empty_ground_truth_gives_zero_box_and_mask_losses(model) -> None:
    samples = [make_sample(64, 96, [], [], rle=True), make_sample(64, 96, [], [], rle=False)]
    data = _batch(model, samples)
    losses = model(**data, mode='loss')
    assert losses['loss_rpn_bbox'].item() == 0.0
    assert losses['loss_bbox'].item() == 0.0
    assert losses['loss_mask'].item() == 0.0
    assert losses['loss_rpn_cls'] > 0 and losses['loss_cls'] > 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()


def test_predict_returns_masks_at_original_size(model) -> None:
    model.eval()
    sample = DetDataSample(
        metainfo=dict(img_shape=(64, 96), ori_shape=(128, 192), scale_factor=(0.5, 0.5))
    )
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
    model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep whatever comes out
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=False)
        (out,) = model(**data, mode='predict')
    pred = out.pred_instances
    n = len(pred)
    assert 0 < n <= 100
    assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n,) and pred.labels.shape == (n,)
    assert isinstance(pred.masks, PredictedMasks) and pred.masks.shape == (n, 128, 192)
    # each mask lies inside its detection's box, rounded outwards
    windows = torch.from_numpy(pred.masks.windows).float()
    assert (windows[:, :2] >= pred.bboxes[:, :2].floor()).all()
    assert (windows[:, 2:] <= pred.bboxes[:, 2:].ceil()).all()
    # boxes are rescaled to the original image
    assert pred.bboxes[:, 2].max() <= 192 and pred.bboxes[:, 3].max() <= 128
    assert (pred.scores[:-1] >= pred.scores[1:]).all()


def test_mask_format_tensor_gives_the_same_masks_dense(model) -> None:
    model.eval()
    sample = DetDataSample(
        metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1, 1))
    )
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
    model.test_cfg.rcnn.score_thr = 0.0
    preds = {}
    for mask_format in ('compact', 'tensor'):
        model.roi_head.test_cfg.mask_format = mask_format
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
            (out,) = model(**data, mode='predict')
        preds[mask_format] = out.pred_instances.masks
    assert preds['tensor'].dtype == torch.bool and len(preds['tensor']) > 0
    assert torch.equal(preds['compact'].to_tensor(), preds['tensor'])
    model.roi_head.test_cfg.mask_format = 'rle'
    with pytest.raises(
        ValueError, match="mask_format must be one of \\['compact', 'tensor'\\], got 'rle'"
    ):
        with torch.no_grad():
            model(**data, mode='predict')
    del model.roi_head.test_cfg['mask_format']


def test_num_classes_mismatch_is_a_clear_error() -> None:
    cfg = tiny_model_cfg()
    cfg.roi_head.mask_head.num_classes = 5
    with pytest.raises(ValueError, match='mask_head.num_classes=5'):
        MODELS.build(cfg)


def test_neck_in_channels_follow_backbone() -> None:
    model = MODELS.build(tiny_model_cfg())
    assert [m.conv.in_channels for m in model.neck.lateral_convs] == [64, 128, 256, 512]


def test_parameter_names_follow_mmdetection(model) -> None:
    names = set(model.state_dict())
    for key in (
        'backbone.conv1.weight',
        'backbone.layer1.0.conv1.weight',
        'neck.lateral_convs.0.conv.weight',
        'neck.fpn_convs.3.conv.bias',
        'rpn_head.rpn_conv.weight',
        'rpn_head.rpn_cls.weight',
        'rpn_head.rpn_reg.weight',
        'roi_head.bbox_head.shared_fcs.1.weight',
        'roi_head.bbox_head.fc_cls.weight',
        'roi_head.bbox_head.fc_reg.weight',
        'roi_head.mask_head.convs.0.conv.weight',
        'roi_head.mask_head.upsample.weight',
        'roi_head.mask_head.conv_logits.weight',
    ):
        assert key in names, key
