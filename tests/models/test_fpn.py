"""FPN: level shapes, mmdetection parameter names, extra levels and a hand-computed toy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from instseg.models.backbones import ResNet
from instseg.models.necks import FPN
from instseg.registry import MODELS

IN_CHANNELS = [8, 16, 32, 64]


def _features(height: int, width: int, channels=IN_CHANNELS) -> list[torch.Tensor]:
    """Maps at strides 4..32 of a height x width image, sized as a ResNet makes them (ceil)."""
    return [
        torch.randn(1, c, math.ceil(height / s), math.ceil(width / s))
        for c, s in zip(channels, [4, 8, 16, 32], strict=True)
    ]


def _set_conv(module: nn.Module, weight: torch.Tensor, bias: float) -> None:
    with torch.no_grad():
        module.conv.weight.copy_(weight.view_as(module.conv.weight))
        module.conv.bias.fill_(bias)


def test_four_levels_give_five_outputs_on_odd_input() -> None:
    fpn = FPN(IN_CHANNELS, out_channels=16, num_outs=5)
    outs = fpn(_features(99, 141))
    # ceil(99 / s) x ceil(141 / s) for s = 4..32, then the stride-2 max pool of 4x5.
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 25, 36),
        (1, 16, 13, 18),
        (1, 16, 7, 9),
        (1, 16, 4, 5),
        (1, 16, 2, 3),
    ]


def test_fpn_on_resnet18_features() -> None:
    backbone = ResNet(18).eval()
    fpn = MODELS.build(
        dict(type='FPN', in_channels=backbone.out_channels, out_channels=8, num_outs=5)
    )
    with torch.no_grad():
        outs = fpn(backbone(torch.randn(1, 3, 67, 93)))
    assert [tuple(o.shape[2:]) for o in outs] == [(17, 24), (9, 12), (5, 6), (3, 3), (2, 2)]


def test_parameter_names_match_mmdetection() -> None:
    fpn = FPN(IN_CHANNELS, out_channels=16, num_outs=5)
    expected = [
        f'{group}.{i}.conv.{p}'
        for group in ('lateral_convs', 'fpn_convs')
        for i in range(4)
        for p in ('weight', 'bias')
    ]
    assert [name for name, _ in fpn.named_parameters()] == expected
    assert fpn.lateral_convs[3].conv.kernel_size == (1, 1)
    assert fpn.fpn_convs[0].conv.kernel_size == (3, 3)


def test_norm_cfg_and_no_norm_on_lateral() -> None:
    fpn = FPN(
        IN_CHANNELS,
        out_channels=16,
        num_outs=4,
        norm_cfg=dict(type='GN', num_groups=4),
        no_norm_on_lateral=True,
        act_cfg=dict(type='ReLU'),
    )
    names = {name for name, _ in fpn.named_parameters()}
    assert 'lateral_convs.0.conv.bias' in names
    assert not any(name.startswith('lateral_convs.0.gn') for name in names)
    assert {'fpn_convs.0.gn.weight', 'fpn_convs.0.gn.bias'} <= names
    assert 'fpn_convs.0.conv.bias' not in names
    outs = fpn(_features(64, 64))
    assert all((o >= 0).all() for o in outs)


@pytest.mark.parametrize(
    ('add_extra_convs', 'first_extra_in'),
    [(True, 64), ('on_input', 64), ('on_lateral', 16), ('on_output', 16)],
)
def test_extra_convs(add_extra_convs, first_extra_in: int) -> None:
    fpn = FPN(IN_CHANNELS, 16, num_outs=6, start_level=1, add_extra_convs=add_extra_convs)
    # Levels 1..3 are used; three extra stride-2 convs follow.
    assert len(fpn.lateral_convs) == 3
    assert len(fpn.fpn_convs) == 6
    assert fpn.fpn_convs[3].conv.in_channels == first_extra_in
    assert fpn.fpn_convs[3].conv.stride == (2, 2)
    assert fpn.fpn_convs[4].conv.in_channels == 16
    outs = fpn(_features(128, 160))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 20), (8, 10), (4, 5), (2, 3), (1, 2), (1, 1)]


def test_end_level_uses_a_subset_of_inputs() -> None:
    fpn = FPN(IN_CHANNELS, 16, num_outs=2, start_level=1, end_level=2)
    outs = fpn(_features(64, 64))
    assert [tuple(o.shape[2:]) for o in outs] == [(8, 8), (4, 4)]


def test_toy_values_pin_lateral_upsampling_and_max_pool() -> None:
    fpn = FPN([1, 1], out_channels=1, num_outs=3)
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    _set_conv(fpn.lateral_convs[0], torch.ones(1), bias=0.0)
    _set_conv(fpn.lateral_convs[1], torch.full((1,), 2.0), bias=1.0)
    _set_conv(fpn.fpn_convs[0], identity, bias=-1.0)
    _set_conv(fpn.fpn_convs[1], torch.ones(3, 3), bias=0.0)
    c2 = torch.full((1, 1, 3, 5), 10.0)
    c3 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).view(1, 1, 2, 3)

    with torch.no_grad():
        p2, p3, p4 = fpn([c2, c3])

    # L3 = 2 * C3 + 1; P3 = its 3x3 box sum with zero padding (column sums 12, 16, 20).
    assert p3[0, 0].tolist() == [[28.0, 48.0, 36.0], [28.0, 48.0, 36.0]]
    # Nearest 2x3 -> 3x5 takes rows (0, 0, 1) and columns (0, 0, 1, 1, 2) of L3;
    # P2 = C2 + upsampled L3 - 1.
    assert p2[0, 0].tolist() == [
        [12.0, 12.0, 14.0, 14.0, 16.0],
        [12.0, 12.0, 14.0, 14.0, 16.0],
        [18.0, 18.0, 20.0, 20.0, 22.0],
    ]
    # Kernel-1 stride-2 max pool keeps P3[0, 0] and P3[0, 2].
    assert p4[0, 0].tolist() == [[28.0, 36.0]]


@pytest.mark.parametrize(('relu', 'expected_p4'), [(True, 0.0), (False, -5.0)])
def test_relu_before_extra_convs(relu: bool, expected_p4: float) -> None:
    fpn = FPN(
        [1],
        out_channels=1,
        num_outs=3,
        add_extra_convs='on_output',
        relu_before_extra_convs=relu,
    )
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    _set_conv(fpn.lateral_convs[0], torch.ones(1), bias=-5.0)
    for conv in fpn.fpn_convs:
        _set_conv(conv, identity, bias=0.0)
    with torch.no_grad():
        p2, p3, p4 = fpn([torch.zeros(1, 1, 4, 4)])
    # The first extra conv reads P2 as it is; only the second sees a ReLU.
    assert p2.eq(-5.0).all() and p3.eq(-5.0).all()
    assert tuple(p3.shape[2:]) == (2, 2) and tuple(p4.shape[2:]) == (1, 1)
    assert p4.item() == expected_p4


def test_upsample_scale_factor_matches_size_on_even_maps() -> None:
    by_size = FPN(IN_CHANNELS, 8, num_outs=4)
    by_scale = FPN(IN_CHANNELS, 8, num_outs=4, upsample_cfg=dict(mode='nearest', scale_factor=2))
    by_scale.load_state_dict(by_size.state_dict())
    feats = _features(128, 64)
    for ours, theirs in zip(by_size(feats), by_scale(feats), strict=True):
        torch.testing.assert_close(ours, theirs)


def test_default_init_is_xavier_uniform_with_zero_bias() -> None:
    fpn = FPN(IN_CHANNELS, 16, num_outs=5)
    for conv in fpn.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.constant_(conv.weight, 5.0)
            nn.init.constant_(conv.bias, 5.0)
    fpn.init_weights()
    for name, module in fpn.named_modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert module.weight.abs().max() <= bound, name
            assert module.weight.std() > bound / 4, name
            assert module.bias.eq(0).all(), name


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        (dict(num_outs=3), 'num_outs'),
        (dict(num_outs=5, add_extra_convs='on_top'), 'add_extra_convs'),
        (dict(num_outs=5, end_level=2), 'end_level'),
        (dict(num_outs=5, start_level=4), 'start_level'),
    ],
)
def test_fpn_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FPN(IN_CHANNELS, 8, **kwargs)


def test_wrong_number_of_inputs_names_the_levels() -> None:
    fpn = FPN(IN_CHANNELS, 8, num_outs=5)
    with pytest.raises(ValueError, match='4 input levels'):
        fpn(_features(64, 64)[:3])
