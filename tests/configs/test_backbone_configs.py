"""Every backbone config builds its model and optimiser and trains one iteration on tiny images.

The full model of each config is built on the meta device (shapes only); the training iteration
runs with a shrunk backbone (fewer blocks and channels), narrow heads and fewer proposals. The
datasets are not built: the images are random 64 x 96 tensors with two boxes each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from instseg.registry import MODELS
from instseg.structures import DetDataSample, PolygonMasks

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'

# config -> (backbone overrides, expected optimiser wrapper, expected weight file)
CASES = {
    'mask_rcnn/mask_rcnn_r101_fpn_1x_coco.py': (
        dict(depth=50),
        'OptimWrapper',
        'checkpoints/resnet101-63fe2227.pth',
    ),
    'mask_rcnn/mask_rcnn_x101_32x4d_fpn_1x_coco.py': (
        dict(depth=50),
        'OptimWrapper',
        'checkpoints/resnext101_32x4d-a5af3160.pth',
    ),
    'swin/mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py': (
        dict(embed_dims=24, depths=[2, 2, 2, 2]),
        'OptimWrapper',
        'checkpoints/swin_tiny_patch4_window7_224.pth',
    ),
    'swin/mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py': (
        dict(embed_dims=24, depths=[2, 2, 2, 2]),
        'OptimWrapper',
        'checkpoints/swin_tiny_patch4_window7_224.pth',
    ),
    'swin/mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py': (
        dict(embed_dims=24, depths=[2, 2, 2, 2]),
        'AmpOptimWrapper',
        'checkpoints/swin_small_patch4_window7_224.pth',
    ),
    'convnext/mask_rcnn_convnext-t_fpn_fp16_ms-crop-3x_coco.py': (
        dict(arch=dict(depths=[1, 1, 3, 1], channels=[16, 32, 64, 128])),
        'AmpOptimWrapper',
        'checkpoints/convnext_tiny_1k_224.pth',
    ),
    'nuclei/mask_rcnn_swin_s.py': (
        dict(embed_dims=24, depths=[2, 2, 2, 2]),
        'AmpOptimWrapper',
        'checkpoints/swin_small_patch4_window7_224.pth',
    ),
    'nuclei/mask_rcnn_r50_fpn.py': (
        dict(depth=18),
        'AmpOptimWrapper',
        'checkpoints/resnet50-0676ba61.pth',
    ),
}


@pytest.fixture(autouse=True)
def _instseg_scope():
    with DefaultScope.overwrite_default_scope('instseg'):
        yield


def _sample(num_classes: int, h: int = 64, w: int = 96) -> DetDataSample:
    boxes = [[8.0, 6.0, 40.0, 50.0], [50.0, 20.0, 90.0, 60.0]]
    polygons = [[np.array([x1, y1, x2, y1, x2, y2, x1, y2], float)] for x1, y1, x2, y2 in boxes]
    sample = DetDataSample(
        metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w))
    )
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes),
        labels=torch.tensor([0, num_classes - 1]),
        masks=PolygonMasks(polygons, h, w),
    )
    return sample


def _fast(cfg: Config) -> None:
    """Narrow heads and fewer proposals: the backbones and optimisers stay as configured."""
    model, channels = cfg.model, 32
    model.neck.out_channels = channels
    model.rpn_head.update(in_channels=channels, feat_channels=channels)
    model.roi_head.bbox_roi_extractor.out_channels = channels
    model.roi_head.mask_roi_extractor.out_channels = channels
    model.roi_head.bbox_head.update(in_channels=channels, fc_out_channels=64)
    model.roi_head.mask_head.update(num_convs=1, in_channels=channels, conv_out_channels=channels)
    model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    model.train_cfg.rcnn.sampler.num = 64


@pytest.mark.parametrize('name', sorted(CASES))
def test_config_builds_and_trains_one_iteration(name: str) -> None:
    overrides, wrapper_type, weights = CASES[name]
    cfg = Config.fromfile(CONFIGS / name)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=weights)
    assert cfg.optim_wrapper.type == wrapper_type
    with torch.device('meta'):
        full = MODELS.build(cfg.model)
    assert list(full.neck.in_channels) == list(full.backbone.out_channels)
    assert full.backbone.strides == [4, 8, 16, 32]

    cfg.model.backbone.update(overrides)
    cfg.model.neck.in_channels = None  # follows the shrunk backbone
    _fast(cfg)
    model = MODELS.build(cfg.model)

    # Without the weight file on disk, initialisation fails naming it (nothing is downloaded).
    with pytest.raises(FileNotFoundError, match=weights):
        model.init_weights()

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = cfg.model.roi_head.bbox_head.num_classes
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8) for _ in range(2)],
        data_samples=[_sample(num_classes), _sample(num_classes)],
    )
    before = [p.detach().clone() for p in model.backbone.parameters() if p.requires_grad]
    model.train()
    log_vars = model.train_step(data, optim_wrapper)
    assert {'loss', 'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(log_vars)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log_vars.values())
    after = [p for p in model.backbone.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


@pytest.mark.parametrize(
    ('name', 'blocks', 'channels'),
    [
        ('mask_rcnn/mask_rcnn_r101_fpn_1x_coco.py', [3, 4, 23, 3], [256, 512, 1024, 2048]),
        ('mask_rcnn/mask_rcnn_x101_32x4d_fpn_1x_coco.py', [3, 4, 23, 3], [256, 512, 1024, 2048]),
        ('swin/mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py', [2, 2, 6, 2], [96, 192, 384, 768]),
        ('nuclei/mask_rcnn_swin_s.py', [2, 2, 18, 2], [96, 192, 384, 768]),
        (
            'convnext/mask_rcnn_convnext-t_fpn_fp16_ms-crop-3x_coco.py',
            [3, 3, 9, 3],
            [96, 192, 384, 768],
        ),
    ],
)
def test_full_backbones(name: str, blocks: list[int], channels: list[int]) -> None:
    cfg = Config.fromfile(CONFIGS / name)
    with torch.device('meta'):
        backbone = MODELS.build(cfg.model.backbone)
    stages = getattr(backbone, 'stages', None) or [
        getattr(backbone, n) for n in backbone.res_layer_names
    ]
    assert [len(getattr(s, 'blocks', s)) for s in stages] == blocks
    assert backbone.out_channels == channels
    if 'x101' in name:
        assert backbone.layer3[0].conv2.groups == 32
        assert backbone.layer3[0].conv2.out_channels == 512  # 32 groups x 4 x (256 / 64) wide


def test_swin_and_convnext_optimiser_recipes() -> None:
    swin = Config.fromfile(CONFIGS / 'swin/mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py')
    assert swin.optim_wrapper.optimizer == dict(
        type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05
    )
    assert set(swin.optim_wrapper.paramwise_cfg.custom_keys) == {
        'absolute_pos_embed',
        'relative_position_bias_table',
        'norm',
    }
    assert swin.optim_wrapper.loss_scale == dict(init_scale=512)
    warmup, steps = swin.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 1000, False)
    assert (steps.milestones, steps.end, swin.train_cfg.max_epochs) == ([27, 33], 36, 36)
    assert swin.model.backbone.depths == [2, 2, 18, 2]
    assert swin.train_dataloader.dataset.pipeline[3].type == 'RandomChoice'

    convnext = Config.fromfile(
        CONFIGS / 'convnext/mask_rcnn_convnext-t_fpn_fp16_ms-crop-3x_coco.py'
    )
    assert convnext.optim_wrapper.constructor == 'LearningRateDecayOptimizerConstructor'
    assert convnext.optim_wrapper.paramwise_cfg.num_layers == 6


def test_nuclei_configs_keep_up_to_1000_detections() -> None:
    for name in ('nuclei/mask_rcnn_r50_fpn.py', 'nuclei/mask_rcnn_swin_s.py'):
        cfg = Config.fromfile(CONFIGS / name)
        assert cfg.train_dataloader.dataset.metainfo.classes == ('nucleus',)
        assert cfg.model.test_cfg.rcnn.max_per_img == 1000
        assert cfg.model.test_cfg.rpn.max_per_img >= 1000
        assert max(cfg.val_evaluator.proposal_nums) == 1000
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
