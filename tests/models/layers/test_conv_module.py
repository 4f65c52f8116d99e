"""ConvModule and build_norm_layer: mmcv attribute names, bias rule, order conv -> norm -> act."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from instseg.models.layers import ConvModule, build_norm_layer


def test_plain_conv_with_relu_values() -> None:
    block = ConvModule(1, 1, 3, padding=1)
    assert block.conv.bias is not None and block.norm is None
    with torch.no_grad():
        block.conv.weight.fill_(1.0)
        block.conv.bias.fill_(-4.0)
    x = torch.ones(1, 1, 3, 3)
    # Zero-padded 3x3 box sums of ones are 4 at corners, 6 at edges, 9 in the centre; minus 4.
    assert block(x)[0, 0].tolist() == [[0.0, 2.0, 0.0], [2.0, 5.0, 2.0], [0.0, 2.0, 0.0]]


def test_norm_names_and_auto_bias() -> None:
    bn = ConvModule(4, 8, 1, norm_cfg=dict(type='BN'))
    gn = ConvModule(4, 8, 1, norm_cfg=dict(type='GN', num_groups=2), act_cfg=None)
    assert [n for n, _ in bn.named_parameters()] == ['conv.weight', 'bn.weight', 'bn.bias']
    assert [n for n, _ in gn.named_parameters()] == ['conv.weight', 'gn.weight', 'gn.bias']
    assert isinstance(gn.norm, nn.GroupNorm) and gn.norm.num_groups == 2
    assert gn.activate is None
    assert ConvModule(4, 8, 1, norm_cfg=dict(type='BN'), bias=True).conv.bias is not None


def test_order_is_conv_norm_activation() -> None:
    block = ConvModule(1, 1, 1, norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU')).train()
    with torch.no_grad():
        block.conv.weight.fill_(3.0)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    out = block(x)
    # Batch norm of 3x has mean 0 and unit (biased) variance; ReLU keeps the upper half.
    z = (x - 2.5) / torch.sqrt(torch.tensor(1.25 + 1e-5))
    torch.testing.assert_close(out, z.clamp(min=0))


def test_leaky_relu_slope_and_stride_dilation() -> None:
    block = ConvModule(
        1, 1, 3, stride=2, padding=2, dilation=2, act_cfg=dict(type='LeakyReLU', negative_slope=0.5)
    )
    assert block.conv.stride == (2, 2) and block.conv.dilation == (2, 2)
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.bias.fill_(-2.0)
    assert block(torch.zeros(1, 1, 5, 5)).eq(-1.0).all()


def test_build_norm_layer_requires_grad_and_kwargs() -> None:
    name, layer = build_norm_layer(dict(type='SyncBN', requires_grad=False, momentum=0.01), 16)
    assert name == 'bn' and isinstance(layer, nn.SyncBatchNorm)
    assert layer.momentum == 0.01
    assert not any(p.requires_grad for p in layer.parameters())


@pytest.mark.parametrize(
    ('cfg', 'error', 'match'),
    [
        (dict(type='IN'), ValueError, "'IN'"),
        (dict(type='GN'), ValueError, 'num_groups'),
        (dict(type='GN', num_groups=3), ValueError, '3 groups'),
        ('BN', TypeError, 'dict'),
    ],
)
def test_build_norm_layer_rejects_bad_cfg(cfg, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build_norm_layer(cfg, 16)


def test_conv_module_rejects_unsupported_configs() -> None:
    with pytest.raises(NotImplementedError, match='DCNv2'):
        ConvModule(4, 4, 3, conv_cfg=dict(type='DCNv2'))
    with pytest.raises(ValueError, match="'PReLU'"):
        ConvModule(4, 4, 3, act_cfg=dict(type='PReLU'))
