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


def test_initialised_like_mmcv_when_built() -> None:
    """Kaiming-normal fan-out conv, zero bias, norm 1/0: a mask head built from ConvModules
    starts where mmdetection's and torchvision's do (PyTorch's default init is ~2.5x smaller)."""
    torch.manual_seed(0)
    block = ConvModule(256, 256, 3, padding=1)
    fan_out = 256 * 3 * 3
    assert block.conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.02)
    assert torch.all(block.conv.bias == 0)
    normed = ConvModule(8, 16, 3, norm_cfg=dict(type='GN', num_groups=4))
    assert torch.all(normed.gn.weight == 1) and torch.all(normed.gn.bias == 0)
    leaky = ConvModule(64, 64, 1, act_cfg=dict(type='LeakyReLU', negative_slope=0.5))
    expected = (2 / (1 + 0.5**2) / 64) ** 0.5
    assert leaky.conv.weight.std().item() == pytest.approx(expected, rel=0.1)


def test_mask_head_convs_start_kaiming() -> None:
    from instseg.registry import MODELS

    torch.manual_seed(0)
    head = MODELS.build(dict(type='FCNMaskHead', num_convs=2, in_channels=64,
                             conv_out_channels=64, num_classes=2))  # fmt: skip
    head.init_weights()
    for conv in head.convs:
        assert conv.conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
