"""Swin/ConvNeXt optimiser settings: no-decay custom_keys and layer-wise lr decay."""

from __future__ import annotations

import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from instseg.models.backbones import ConvNeXt, ResNet, SwinTransformer

SWIN_CUSTOM_KEYS = {
    'absolute_pos_embed': dict(decay_mult=0.0),
    'relative_position_bias_table': dict(decay_mult=0.0),
    'norm': dict(decay_mult=0.0),
}


class Detector(nn.Module):
    """A backbone and a neck layer under mmdetection's attribute names."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Conv2d(8, 8, 1)


@pytest.fixture(autouse=True)
def _instseg_scope():
    with DefaultScope.overwrite_default_scope('instseg'):
        yield


def _groups(model: nn.Module, **cfg) -> dict[str, dict]:
    """Build the optim wrapper; return each parameter's group options by parameter name."""
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05), **cfg)
    )
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: group for group in wrapper.optimizer.param_groups for p in group['params']
    }


def _no_decay(groups: dict[str, dict]) -> list[str]:
    return sorted(n for n, g in groups.items() if g['weight_decay'] == 0)


def test_swin_custom_keys_match_real_parameter_names() -> None:
    swin = SwinTransformer(
        embed_dims=8,
        depths=(1, 1),
        num_heads=(1, 2),
        strides=(4, 2),
        out_indices=(0, 1),
        use_abs_pos_embed=True,
        pretrain_img_size=32,
    )
    groups = _groups(Detector(swin), paramwise_cfg=dict(custom_keys=SWIN_CUSTOM_KEYS))
    norm = ['bias', 'weight']
    expected = ['backbone.absolute_pos_embed']
    expected += [f'backbone.norm{i}.{p}' for i in (0, 1) for p in norm]
    expected += [f'backbone.patch_embed.norm.{p}' for p in norm]
    for s in (0, 1):
        expected += [f'backbone.stages.{s}.blocks.0.attn.w_msa.relative_position_bias_table']
        expected += [f'backbone.stages.{s}.blocks.0.norm{k}.{p}' for k in (1, 2) for p in norm]
    expected += [f'backbone.stages.0.downsample.norm.{p}' for p in norm]
    assert _no_decay(groups) == sorted(expected)
    # As in mmdetection, Linear biases keep their weight decay under these keys.
    assert groups['backbone.stages.0.blocks.0.attn.w_msa.qkv.bias']['weight_decay'] == 0.05
    assert groups['neck.weight']['weight_decay'] == 0.05


def test_convnext_custom_keys_miss_the_downsampling_norms() -> None:
    convnext = ConvNeXt(dict(depths=[1, 1], channels=[8, 16]), out_indices=(1,))
    groups = _groups(Detector(convnext), paramwise_cfg=dict(custom_keys=SWIN_CUSTOM_KEYS))
    assert _no_decay(groups) == sorted(
        f'backbone.{m}.{p}' for m in ('stages.0.0.norm', 'stages.1.0.norm', 'norm1')
        for p in ('bias', 'weight')
    )  # fmt: skip
    # mmpretrain names the LayerNorms of the stem and downsampling layers by index: 'norm' does
    # not match them; the ConvNeXt config uses LearningRateDecayOptimizerConstructor, which
    # exempts every 1-D parameter.
    assert groups['backbone.downsample_layers.0.1.weight']['weight_decay'] == 0.05


def _lr_scales(model: nn.Module, **paramwise_cfg) -> dict[str, dict]:
    return _groups(
        model,
        constructor='LearningRateDecayOptimizerConstructor',
        paramwise_cfg=paramwise_cfg,
    )


def test_convnext_layer_wise_decay_follows_mmdetection() -> None:
    model = Detector(ConvNeXt(dict(depths=[1, 1, 6, 1], channels=[8, 16, 32, 64])))
    groups = _lr_scales(model, decay_rate=0.5, decay_type='layer_wise')
    # num_layers defaults to 3 + ceil(6 / 3) = 5; lr scale = 0.5 ** (5 + 1 - layer_id).
    expected_ids = {
        'backbone.downsample_layers.0.0.weight': 0,
        'backbone.stages.0.0.pointwise_conv1.weight': 1,
        'backbone.downsample_layers.1.1.weight': 2,
        'backbone.stages.1.0.depthwise_conv.weight': 2,
        'backbone.downsample_layers.2.1.weight': 3,
        'backbone.stages.2.2.pointwise_conv2.weight': 3,
        'backbone.stages.2.3.pointwise_conv2.weight': 4,
        'backbone.stages.2.5.gamma': 4,
        'backbone.downsample_layers.3.1.weight': 5,
        'backbone.stages.3.0.depthwise_conv.weight': 5,
        'backbone.norm3.weight': 6,
        'neck.weight': 6,
    }
    for name, layer_id in expected_ids.items():
        assert groups[name]['lr'] == pytest.approx(1e-4 * 0.5 ** (6 - layer_id)), name
        assert groups[name]['lr_scale'] == pytest.approx(0.5 ** (6 - layer_id)), name
    assert _no_decay(groups) == sorted(
        n for n, p in model.named_parameters() if p.ndim == 1
    )  # biases, norms, layer scales
    assert groups['backbone.stages.2.3.pointwise_conv2.weight']['weight_decay'] == 0.05


def test_convnext_stage_wise_decay() -> None:
    model = Detector(ConvNeXt(dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64])))
    groups = _lr_scales(model, decay_rate=0.5, decay_type='stage_wise', num_layers=4)
    for name, layer_id in {
        'backbone.downsample_layers.2.1.weight': 0,
        'backbone.stages.0.0.depthwise_conv.weight': 1,
        'backbone.stages.2.1.depthwise_conv.weight': 3,
        'backbone.stages.3.0.depthwise_conv.weight': 4,
        'neck.weight': 5,
    }.items():
        assert groups[name]['lr_scale'] == pytest.approx(0.5 ** (5 - layer_id)), name


def test_swin_layer_wise_decay_and_frozen_parameters() -> None:
    swin = SwinTransformer(
        embed_dims=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), frozen_stages=0
    )
    model = Detector(swin)
    groups = _lr_scales(model, decay_rate=0.5)
    # num_layers = sum(depths) = 8: block j of stage s is layer sum(depths[:s]) + j + 1.
    for name, layer_id in {
        'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight': 1,
        'backbone.stages.1.blocks.1.ffn.layers.0.0.weight': 4,
        'backbone.stages.1.downsample.reduction.weight': 4,
        'backbone.stages.3.blocks.1.attn.w_msa.proj.weight': 8,
        'backbone.norm3.weight': 9,
        'neck.weight': 9,
    }.items():
        assert groups[name]['lr_scale'] == pytest.approx(0.5 ** (9 - layer_id)), name
    # frozen_stages=0 froze the patch embedding: it is not optimised at all.
    assert not [n for n in groups if n.startswith('backbone.patch_embed')]
    table = 'backbone.stages.2.blocks.0.attn.w_msa.relative_position_bias_table'
    assert groups[table]['weight_decay'] == 0


@pytest.mark.parametrize(
    ('backbone', 'paramwise_cfg', 'error', 'match'),
    [
        ('convnext', dict(decay_rate=0.9, custom_keys={}), ValueError, 'custom_keys'),
        ('convnext', dict(decay_type='layer_wise'), ValueError, 'decay_rate required'),
        ('convnext', dict(decay_rate=0.9, decay_type='block'), ValueError, 'block'),
        ('convnext', dict(decay_rate=0.9, num_layers=2), ValueError, 'at least 5'),
        ('resnet', dict(decay_rate=0.9), NotImplementedError, 'ResNet'),
    ],
)
def test_layer_decay_rejects_bad_settings(backbone, paramwise_cfg, error, match) -> None:
    module = (
        ConvNeXt(dict(depths=[1, 1, 6, 1], channels=[8, 16, 32, 64]))
        if backbone == 'convnext'
        else ResNet(18, num_stages=1, out_indices=(0,))
    )
    with pytest.raises(error, match=match):
        _lr_scales(Detector(module), **paramwise_cfg)
