"""mmdetection 3.3.0's own configs (tests/data/configs_3x/, its folder layout) run unchanged.

Each is loaded as tools/train.py loads it, with ``--cfg-options`` that point it at coco_tiny, shrink
the backbone and heads and stop after 2 iterations, and then trained and validated by the Runner.
Image scales are divided by 8 (every ``scale``/``scales``/``crop_size``), keeping the pipelines'
structure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from instseg.engine import Runner
from instseg.engine.config import load_config
from instseg.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS_3X = ROOT / 'tests' / 'data' / 'configs_3x' / 'configs'

SMALL_HEADS = {
    'model.neck.out_channels': 32,
    'model.rpn_head.in_channels': 32,
    'model.rpn_head.feat_channels': 32,
    'model.roi_head.bbox_roi_extractor.out_channels': 32,
    'model.roi_head.mask_roi_extractor.out_channels': 32,
    'model.roi_head.mask_head.in_channels': 32,
    'model.roi_head.mask_head.conv_out_channels': 32,
    'model.roi_head.mask_head.num_convs': 1,
    'model.train_cfg.rpn_proposal.max_per_img': 64,
    'model.test_cfg.rpn.max_per_img': 64,
}
BBOX_HEAD = {'in_channels': 32, 'fc_out_channels': 64}
RESNET18 = {
    'model.backbone.depth': 18,
    'model.backbone.init_cfg': None,
    'model.neck.in_channels': [64, 128, 256, 512],
}
RESNEXT50 = {  # ResNeXt needs bottlenecks: depth 50, 4 groups of width 4
    'model.backbone.depth': 50,
    'model.backbone.groups': 4,
    'model.backbone.init_cfg': None,
}
SWIN = {
    'model.backbone.embed_dims': 16,
    'model.backbone.depths': [1, 1, 1, 1],
    'model.backbone.num_heads': [1, 1, 2, 2],
    'model.neck.in_channels': [16, 32, 64, 128],
    'model.backbone.init_cfg': None,
}
CONVNEXT_ARCH = dict(depths=[1, 1, 1, 1], channels=[16, 32, 64, 128])
CONVNEXT = {
    'model.backbone.arch': dict(_delete_=True, **CONVNEXT_ARCH),
    'model.neck.in_channels': [16, 32, 64, 128],
}

# config -> the cfg-options that shrink its backbone
CASES = {
    'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py': RESNET18,
    'mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py': RESNET18,
    'mask_rcnn/mask-rcnn_r50_fpn_poly-1x_coco.py': RESNET18,
    'mask_rcnn/mask-rcnn_r50_fpn_amp-1x_coco.py': RESNET18,
    'mask_rcnn/mask-rcnn_r50_fpn_ms-poly-3x_coco.py': RESNET18,
    'mask_rcnn/mask-rcnn_x101-32x4d_fpn_1x_coco.py': RESNEXT50,
    'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py': RESNET18,
    'cascade_rcnn/cascade-mask-rcnn_x101-32x4d_fpn_1x_coco.py': RESNEXT50,
    'swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py': SWIN,
    'swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py': SWIN,
    'convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py': CONVNEXT,
}


def scaled(node, factor: int = 8):
    """``node`` with every image size in a pipeline step divided by ``factor``."""
    if isinstance(node, dict):
        out = {k: scaled(v, factor) for k, v in node.items()}
        for key in ('scale', 'scales', 'crop_size'):
            if key in out and 'type' in out:
                out[key] = _divide(out[key], factor)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(scaled(v, factor) for v in node)
    return node


def _divide(size, factor: int):
    if isinstance(size, (int, float)):
        return max(1, int(size) // factor)
    return type(size)(_divide(s, factor) for s in size)


def data_options(cfg_path: Path, coco_tiny: Path, cascade: bool, repeat: bool) -> dict:
    """``--cfg-options`` pointing the config at coco_tiny: 2 training images, 2 iterations of
    batch 1, one validation pass over 2 images at the end."""
    train = 'train_dataloader.dataset.dataset' if repeat else 'train_dataloader.dataset'
    options = {
        f'{train}.data_root': f'{coco_tiny}/',
        f'{train}.indices': 2,
        'train_dataloader.batch_size': 1,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.dataset.data_root': f'{coco_tiny}/',
        'val_dataloader.dataset.indices': 2,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'val_evaluator.ann_file': f'{coco_tiny}/annotations/instances_val2017.json',
        'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1,
        'visualizer.name': f'visualizer_{cfg_path.stem}',
    }
    if repeat:
        options['train_dataloader.dataset.times'] = 1
    heads = (
        [f'model.roi_head.bbox_head.{i}' for i in range(3)]
        if cascade
        else ['model.roi_head.bbox_head']
    )
    for head in heads:
        options.update({f'{head}.{k}': v for k, v in BBOX_HEAD.items()})
    return options


def write_mmpretrain_convnext(path: Path) -> dict:
    """An mmpretrain classifier checkpoint (``backbone.`` and ``head.`` keys) of the shrunk
    ConvNeXt, as the config's ``init_cfg`` (with ``prefix='backbone.'``) expects; its backbone
    state is returned."""
    backbone = MODELS.build(
        dict(type='ConvNeXt', arch=CONVNEXT_ARCH, layer_scale_init_value=1.0)
    ).state_dict()
    state = {f'backbone.{k}': v + 0.5 for k, v in backbone.items()}
    state['head.fc.weight'] = torch.zeros(1000, 128)
    torch.save({'meta': {}, 'state_dict': state}, path)
    return {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}


@pytest.mark.parametrize('name', sorted(CASES))
def test_mmdet3_config_trains_two_iterations(name: str, coco_tiny: Path, tmp_path: Path) -> None:
    path = CONFIGS_3X / name
    cascade = name.startswith('cascade')
    repeat = 'ms-poly-3x' in name
    options = {**data_options(path, coco_tiny, cascade, repeat), **SMALL_HEADS, **CASES[name]}
    if 'convnext' in name:
        weights = tmp_path / 'convnext-tiny_3rdparty_in1k.pth'
        expected = write_mmpretrain_convnext(weights)
        options['model.backbone.init_cfg.checkpoint'] = str(weights)
    cfg = load_config(str(path), options, work_dir=str(tmp_path / 'work'))
    cfg = Config(scaled(cfg.to_dict()), filename=cfg.filename)
    assert cfg.default_scope == 'instseg'
    if 'convnext' in name:  # init_cfg's prefix='backbone.' picks the classifier's backbone
        assert cfg.model.backbone.type == 'ConvNeXt' and 'custom_imports' not in cfg
        model = MODELS.build(cfg.model)
        model.init_weights()
        loaded = model.backbone.state_dict()
        for key, value in expected.items():
            torch.testing.assert_close(loaded[key], value, msg=key)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    scalars = (Path(runner.log_dir) / 'vis_data' / 'scalars.json').read_text().splitlines()
    assert len(scalars) == 3  # two training iterations and the validation
    assert math.isfinite(json.loads(scalars[1])['loss'])
    assert 'coco/segm_mAP' in json.loads(scalars[2])
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
    # the run's copy of the config is native: it loads back without the 3.x handling
    dumped = Config.fromfile(tmp_path / 'work' / path.name)
    assert dumped.default_scope == 'instseg'
