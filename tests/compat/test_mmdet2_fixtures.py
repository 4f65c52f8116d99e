"""Each 2.x fixture config translates to the model, pipelines, data and schedule of its native twin.

Fixtures (tests/data/configs_2x/, written in mmdetection 2.x's and the Swin Transformer
detection repository's dialects) and their native equivalents:

- mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py -> configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py
- swin/mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py -> SWIN_T_NATIVE below (mmdetection 3.x's
  config of that name, on instseg's bases)
- swin/cascade_mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py -> configs/swin/ (same name)
- nuclei/cascade_mask_rcnn_swin_s_nuclei.py -> configs/nuclei/cascade_mask_rcnn_swin_s.py
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

from instseg.engine.config import load_config
from instseg.registry import MODELS

init_default_scope('instseg')

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
FIXTURES = ROOT / 'tests' / 'data' / 'configs_2x'

SWIN_T_NATIVE = f"""
_base_ = [
    '{CONFIGS}/_base_/models/mask_rcnn_r50_fpn.py',
    '{CONFIGS}/_base_/datasets/coco_instance_ms_crop.py',
    '{CONFIGS}/_base_/schedules/schedule_3x.py',
    '{CONFIGS}/_base_/default_runtime.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'
model = dict(
    backbone=dict(
        _delete_=True, type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4, qkv_bias=True, qk_scale=None,
        drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.2, patch_norm=True,
        out_indices=(0, 1, 2, 3), with_cp=False, convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={{
        'absolute_pos_embed': dict(decay_mult=0.0),
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0)}}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)]
"""

PAIRS = {
    'mask_rcnn_r50': ('mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py',) * 2,
    'mask_rcnn_swin_t': ('swin/mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', None),
    'cascade_swin_s_fp16': (
        'swin/cascade_mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py',
        'swin/cascade_mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco.py',
    ),
    'nuclei': ('nuclei/cascade_mask_rcnn_swin_s_nuclei.py', 'nuclei/cascade_mask_rcnn_swin_s.py'),
}  # fmt: skip
SWIN_PAIRS = ['cascade_swin_s_fp16', 'mask_rcnn_swin_t', 'nuclei']
_CACHE: dict[str, tuple[dict, dict]] = {}


@pytest.fixture(scope='module')
def native_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('native')


def load_pair(name: str, native_dir: Path) -> tuple[str, dict, dict]:
    """(name, translated 2.x fixture, native config), both as plain dicts (copies)."""
    if name not in _CACHE:
        old, native = PAIRS[name]
        if native is None:
            path = native_dir / 'mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'
            path.write_text(SWIN_T_NATIVE)
        else:
            path = CONFIGS / native
        translated = load_config(str(FIXTURES / old)).to_dict()
        _CACHE[name] = (translated, Config.fromfile(path).to_dict())
    translated, native = _CACHE[name]
    return name, copy.deepcopy(translated), copy.deepcopy(native)


@pytest.fixture(params=sorted(PAIRS))
def pair(request, native_dir: Path) -> tuple[str, dict, dict]:
    return load_pair(request.param, native_dir)


def plain(value):
    """Tuples as lists: 2.x and native configs write sequences either way."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def resolved(model: dict) -> dict:
    """``model`` with its backbone's left-out arguments filled with the defaults."""
    model = copy.deepcopy(model)
    backbone = model['backbone']
    signature = inspect.signature(MODELS.get(backbone['type']))
    args = signature.bind(**{k: v for k, v in backbone.items() if k != 'type'})
    args.apply_defaults()
    model['backbone'] = dict(type=backbone['type'], **args.arguments)
    return plain(model)


def test_model_matches_native(pair) -> None:
    name, translated, native = pair
    if name == 'mask_rcnn_r50':  # 2.x's model-level pretrained= became the backbone's init_cfg
        assert translated['model']['backbone'].pop('init_cfg') == dict(
            type='Pretrained', checkpoint='torchvision://resnet50'
        )
        assert native['model']['backbone'].pop('init_cfg', None) is None
    assert resolved(translated['model']) == resolved(native['model'])


def _pipelines(cfg: dict) -> dict[str, list]:
    return {s: cfg[f'{s}_dataloader']['dataset']['pipeline'] for s in ('train', 'val', 'test')}


def test_pipelines_match_native(pair) -> None:
    name, translated, native = pair
    ours, theirs = _pipelines(translated), _pipelines(native)
    if name == 'nuclei':
        # a 2.x training pipeline needed a Resize (Collect required scale_factor); at the tile
        # size with keep_ratio it leaves 1000x1000 tiles as they are
        assert ours['train'].pop(2) == dict(type='Resize', scale=(1000, 1000), keep_ratio=True)
    for split in ours:
        assert plain(ours[split]) == plain(theirs[split]), split
        assert repr(Compose(ours[split])) == repr(Compose(theirs[split])), split


def test_dataloaders_and_evaluators_match_native(pair) -> None:
    name, translated, native = pair
    for split in ('train', 'val', 'test'):
        ours, theirs = translated[f'{split}_dataloader'], native[f'{split}_dataloader']
        ours['dataset'].pop('pipeline'), theirs['dataset'].pop('pipeline')
        if name == 'nuclei' and split == 'train':
            # 2.x CocoDataset always dropped images under 32 px; the 1000 px tiles are not affected
            assert ours['dataset']['filter_cfg'].pop('min_size') == 32
            theirs['dataset']['filter_cfg'].pop('min_size')
        assert plain(ours) == plain(theirs), split
    for key in ('val_evaluator', 'test_evaluator'):
        theirs = dict(native[key])
        theirs.setdefault('format_only', False)  # the CocoMetric default
        assert plain(dict(translated[key], format_only=False)) == plain(theirs)
    if name == 'nuclei':
        assert translated['train_dataloader']['dataset']['metainfo'] == dict(classes=('nucleus',))


def test_schedule_matches_native(pair) -> None:
    _, translated, native = pair
    for key in ('train_cfg', 'val_cfg', 'test_cfg', 'optim_wrapper', 'param_scheduler'):
        assert plain(translated[key]) == plain(native[key]), key
    assert translated['auto_scale_lr'] == native['auto_scale_lr']


def _lrs(schedulers: list[dict], base: float, points: list[int], epoch_length: int) -> list:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base)
    built = [
        PARAM_SCHEDULERS.build(
            dict(s, epoch_length=epoch_length) if s.get('by_epoch', True) else s,
            default_args=dict(optimizer=optimizer),
        )
        for s in schedulers
    ]
    seen = {}
    for it in range(max(points) + 1):
        seen[it] = optimizer.param_groups[0]['lr']
        optimizer.step()
        for s in built:
            if not s.by_epoch or (it + 1) % epoch_length == 0:
                s.step()
    return [seen[p] for p in points]


# (iteration, epoch) points with 100 iterations per epoch, and the expected factor of the base lr
LR_POINTS = {
    'mask_rcnn_r50': [(0, 0.001), (250, 0.001 + 0.999 * 250 / 499), (499, 1.0), (500, 1.0),
                      (799, 1.0), (800, 0.1), (1100, 0.01), (1199, 0.01)],
    'mask_rcnn_swin_t': [(0, 0.001), (500, 0.001 + 0.999 * 500 / 999), (999, 1.0), (1000, 1.0),
                         (2699, 1.0), (2700, 0.1), (3300, 0.01), (3599, 0.01)],
    'nuclei': [(0, 0.001), (50, 0.001 + 0.999 * 50 / 99), (99, 1.0), (100, 1.0), (2699, 1.0),
               (2700, 0.1), (3300, 0.01)],
}  # fmt: skip
LR_POINTS['cascade_swin_s_fp16'] = LR_POINTS['mask_rcnn_swin_t']


def test_learning_rates_match_native(pair) -> None:
    name, translated, native = pair
    base = translated['optim_wrapper']['optimizer']['lr']
    points = [it for it, _ in LR_POINTS[name]]
    ours = _lrs(translated['param_scheduler'], base, points, epoch_length=100)
    theirs = _lrs(native['param_scheduler'], base, points, epoch_length=100)
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert ours == pytest.approx([base * factor for _, factor in LR_POINTS[name]], rel=1e-6)


def _tiny_swin() -> torch.nn.Module:
    model = torch.nn.Module()
    model.backbone = MODELS.build(
        dict(
            type='SwinTransformer',
            embed_dims=32,
            depths=[2, 2],
            num_heads=[1, 2],
            out_indices=(0, 1),
            strides=(4, 2),
        )  # fmt: skip
    )
    return model


def _groups(wrapper, model: torch.nn.Module) -> dict[str, tuple[float, float]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: (group['lr'], group['weight_decay'])
        for group in wrapper.optimizer.param_groups
        for p in group['params']
    }


@pytest.mark.parametrize('name', SWIN_PAIRS)
def test_swin_optimizers_build_the_same_parameter_groups(name: str, native_dir: Path) -> None:
    _, translated, native = load_pair(name, native_dir)
    model = _tiny_swin()
    ours = build_optim_wrapper(model, translated['optim_wrapper'])
    theirs = build_optim_wrapper(model, native['optim_wrapper'])
    assert type(ours) is type(theirs)
    groups = _groups(ours, model)
    assert groups == _groups(theirs, model)
    decay = {n: wd for n, (_, wd) in groups.items()}
    assert decay['backbone.stages.0.blocks.0.norm1.weight'] == 0.0
    assert any('relative_position_bias_table' in n and wd == 0.0 for n, wd in decay.items())
    assert decay['backbone.stages.0.blocks.0.ffn.layers.0.0.weight'] == pytest.approx(0.05)


CHANNELS = ('in_channels', 'out_channels', 'feat_channels', 'conv_out_channels')


def shrink(model: dict) -> dict:
    """The same model, small: ResNet-18 or a 2-block-per-stage 32-wide Swin, 16-channel heads."""
    model = copy.deepcopy(model)
    backbone = model['backbone']
    if backbone['type'] == 'ResNet':
        backbone['depth'] = 18
    else:
        backbone.update(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
    model['neck']['in_channels'] = None  # follows the backbone

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in CHANNELS and value == 256:
                    node[key] = 16
                elif key == 'fc_out_channels':
                    node[key] = 32
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(model)
    return model


def test_built_models_match_native(pair) -> None:
    name, translated, native = pair
    if name == 'mask_rcnn_r50':
        native['model']['backbone']['init_cfg'] = translated['model']['backbone']['init_cfg']
    ours = MODELS.build(shrink(translated['model']))
    theirs = MODELS.build(shrink(native['model']))
    assert repr(ours) == repr(theirs)
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in theirs.state_dict().items()}
    assert type(ours).__name__ == native['model']['type']
