"""Detector checkpoint converters: torchvision v2 and old layouts, COCO classes, mmdetection 2.x
(official Swin names) and format detection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from mmengine.config import Config
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from instseg.checkpoint.convert import (
    convert_checkpoint,
    convert_mmdet,
    convert_torchvision_maskrcnn,
)
from instseg.checkpoint.convert.conventions import COCO_CATEGORY_IDS
from instseg.checkpoint.detect import detect_format
from instseg.checkpoint.load import load_detector_state
from instseg.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[3] / 'configs'
SMALL_HEADS = dict(
    neck=dict(in_channels=None, out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=3),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(num_convs=2, in_channels=32, conv_out_channels=32, num_classes=3),
    ),
)


def _build(config: str, swin: dict | None = None, **model) -> torch.nn.Module:
    cfg = Config.fromfile(CONFIGS / config)
    cfg.merge_from_dict(dict(model=model))
    if swin is not None:
        cfg.model.backbone = swin
    return MODELS.build(cfg.model).eval()


def _tiny_torchvision() -> MaskRCNN:
    """torchvision Mask R-CNN with maskrcnn_resnet50_fpn's key layout, on R18 with 32 channels."""
    layers = {f'layer{i + 1}': str(i) for i in range(4)}
    backbone = BackboneWithFPN(torchvision.models.resnet18(), layers, [64, 128, 256, 512], 32)
    return MaskRCNN(
        backbone,
        box_head=TwoMLPHead(32 * 7 * 7, 64),
        box_predictor=FastRCNNPredictor(64, 4),
        mask_head=MaskRCNNHeads(32, [32, 32], 1),
        mask_predictor=MaskRCNNPredictor(32, 32, 4),
    )


def _randomise_bn_statistics(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.normal_(0.0, 0.1)


def test_v2_loads_completely_and_computes_what_torchvision_computes() -> None:
    torch.manual_seed(0)
    tv = torchvision.models.detection.maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None)
    _randomise_bn_statistics(tv)
    tv.eval()
    ours = _build('mask_rcnn/mask_rcnn_r50_fpn_v2_torchvision.py')  # 80 COCO classes
    report = load_detector_state(ours, tv.state_dict(), 'maskrcnn_resnet50_fpn_v2')
    assert report.format == 'torchvision'
    assert (report.missing, report.unexpected, report.reinitialized) == ([], [], [])

    with torch.no_grad():
        image = torch.randn(1, 3, 64, 96)
        tv_feats = list(tv.backbone(image).values())
        our_feats = ours.extract_feat(image)
        for a, b in zip(our_feats, tv_feats, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        tv_obj, tv_deltas = tv.rpn.head(tv_feats)
        our_obj, our_deltas = ours.rpn_head(our_feats)
        torch.testing.assert_close(our_obj, tv_obj, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(our_deltas, tv_deltas, atol=1e-4, rtol=1e-4)

        # The heads on the same pooled features; ours keep the 80 used COCO categories.
        coco = torch.tensor(COCO_CATEGORY_IDS)
        box_feats = torch.randn(5, 256, 7, 7)
        tv_cls, tv_reg = tv.roi_heads.box_predictor(tv.roi_heads.box_head(box_feats))
        our_cls, our_reg = ours.roi_head.bbox_head(box_feats)
        torch.testing.assert_close(our_cls, tv_cls[:, [*coco, 0]], atol=1e-4, rtol=1e-4)
        tv_reg = tv_reg.view(5, 91, 4)[:, coco]
        torch.testing.assert_close(our_reg.view(5, 80, 4), tv_reg, atol=1e-4, rtol=1e-4)
        mask_feats = torch.randn(3, 256, 14, 14)
        tv_masks = tv.roi_heads.mask_predictor(tv.roi_heads.mask_head(mask_feats))
        our_masks = ours.roi_head.mask_head(mask_feats)
        torch.testing.assert_close(our_masks, tv_masks[:, coco], atol=1e-4, rtol=1e-4)


def test_torchvision_layout_before_0_13_converts_the_same() -> None:
    torch.manual_seed(0)
    state = _tiny_torchvision().state_dict()
    renames = [
        (r'^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.0\.', r'\1.'),
        (r'^rpn\.head\.conv\.0\.0\.', 'rpn.head.conv.'),
        (
            r'^roi_heads\.mask_head\.(\d+)\.0\.',
            lambda m: f'roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.',
        ),
    ]
    old = {}
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        old[key] = value
    assert 'rpn.head.conv.weight' in old and 'roi_heads.mask_head.mask_fcn2.bias' in old
    new, fmt = convert_checkpoint(state)
    assert fmt == 'torchvision'
    assert convert_torchvision_maskrcnn(old).keys() == new.keys()
    ours = _build(
        'mask_rcnn/mask_rcnn_r50_fpn_torchvision.py', backbone=dict(depth=18), **SMALL_HEADS
    )
    report = load_detector_state(ours, old, 'old.pth')
    assert (report.missing, report.unexpected) == ([], [])
    assert torch.equal(
        ours.roi_head.mask_head.convs[1].conv.bias, state['roi_heads.mask_head.1.0.bias']
    )


def test_unknown_keys_pass_through_to_be_reported() -> None:
    state = {
        'roi_heads.box_head.fc6.weight': torch.zeros(2, 2),
        'roi_heads.extra.weight': torch.ones(1),
    }
    out = convert_torchvision_maskrcnn(state)
    assert set(out) == {'roi_head.bbox_head.shared_fcs.0.weight', 'roi_heads.extra.weight'}


def _to_official_swin(state: dict) -> dict:
    """instseg (mmdetection) Swin keys -> the official release's, as mmdetection 2.x Swin detectors
    trained with Swin-Transformer-Object-Detection store them."""
    out = {}
    for key, value in state.items():
        key = key.replace('patch_embed.projection.', 'patch_embed.proj.')
        key = re.sub(r'^stages\.(\d+)\.', r'layers.\1.', key)
        key = key.replace('.attn.w_msa.', '.attn.')
        key = key.replace('.ffn.layers.0.0.', '.mlp.fc1.').replace('.ffn.layers.1.', '.mlp.fc2.')
        if '.downsample.' in key:
            # official merging inputs: neighbour-major (0,0), (1,0), (0,1), (1,1) x C channels
            lead, c = value.shape[:-1], value.shape[-1] // 4
            grouped = value.reshape(*lead, c, 4).transpose(-1, -2)[..., [0, 2, 1, 3], :]
            value = grouped.reshape(*lead, 4 * c)
        out[key] = value
    return out


def test_mmdet2_swin_detector_round_trips() -> None:
    torch.manual_seed(0)
    swin = dict(
        type='SwinTransformer',
        embed_dims=32,
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        window_size=7,
        drop_path_rate=0.0,
    )
    ours = _build('mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py', swin=swin, **SMALL_HEADS)
    state = ours.state_dict()
    backbone = {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}
    official = {f'backbone.{k}': v for k, v in _to_official_swin(backbone).items()}
    assert 'backbone.layers.0.blocks.0.attn.qkv.weight' in official
    checkpoint = dict(
        state_dict={
            **{k: v for k, v in state.items() if not k.startswith('backbone.')},
            **official,
        },
        meta=dict(mmdet_version='2.11.0', CLASSES=('a', 'b', 'c'), epoch=12),
    )
    converted, fmt = convert_checkpoint(checkpoint, source='swin_2x.pth')
    assert fmt == 'mmdet'
    assert converted.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(converted[key], value), key
    fresh = _build('mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py', swin=swin, **SMALL_HEADS)
    report = load_detector_state(fresh, checkpoint, 'swin_2x.pth')
    assert (report.missing, report.unexpected) == ([], [])


def test_mmdet_resnet_keys_are_kept() -> None:
    state = {
        'backbone.layer1.0.conv1.weight': torch.ones(1),
        'roi_head.bbox_head.0.fc_cls.bias': torch.ones(2),
    }
    assert convert_mmdet(state) == state
    assert detect_format(state) == 'mmdet'


def test_unknown_format_names_the_file_and_sample_keys() -> None:
    state = {'encoder.layer.0.weight': torch.ones(1), 'decoder.weight': torch.ones(1)}
    with pytest.raises(ValueError, match=r"model_final\.pkl.*'encoder\.layer\.0\.weight'"):
        detect_format(state, 'model_final.pkl')
    with pytest.raises(ValueError, match='top-level keys'):
        convert_checkpoint({'epoch': 3, 'optimizer': {}}, source='run.pth')
    with pytest.raises(ValueError, match="format 'caffe2'"):
        convert_checkpoint({'conv1.weight': torch.ones(1)}, fmt='caffe2', source='x.pth')
