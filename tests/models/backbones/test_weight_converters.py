"""Layout detection and key conversion (the public functions the detector-level loader calls)."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from backbone_sources import (
    CONVNEXT_ARCH,
    SWIN_KW,
    official_convnext_state,
    official_swin_state,
    timm_convnext,
    timm_swin,
)
from torch import nn

from instseg.checkpoint.convert.backbones import (
    convert_convnext_official,
    convert_for_backbone,
    convert_swin_official,
    convert_timm,
)
from instseg.checkpoint.detect import detect_backbone_format
from instseg.models.backbones import ConvNeXt, ResNet, SwinTransformer
from instseg.models.backbones.swin_layers import PatchMerging


def test_detect_backbone_format_for_every_layout() -> None:
    with torch.device('meta'):
        states = {
            'swin_official': official_swin_state(timm_swin()),
            'swin_timm': timm_swin().state_dict(),
            'swin_mmdet': SwinTransformer(**SWIN_KW).state_dict(),
            'convnext_official': official_convnext_state(timm_convnext()),
            'convnext_timm': timm_convnext().state_dict(),
            'convnext_mmpretrain': ConvNeXt(CONVNEXT_ARCH).state_dict(),
            'resnet': torchvision.models.resnet18().state_dict(),
            'unknown': timm.create_model('mobilenetv2_100').state_dict(),
        }
    assert {name: detect_backbone_format(state) for name, state in states.items()} == {
        name: name for name in states
    }
    assert detect_backbone_format(ResNet(18).state_dict()) == 'resnet'


def test_official_swin_conversion_renames_and_drops_buffers() -> None:
    official = official_swin_state(timm_swin())
    before = dict(official)
    converted = convert_swin_official(official)
    assert official.keys() == before.keys()  # the input is left alone
    assert 'stages.0.blocks.1.attn.w_msa.qkv.weight' in converted
    assert 'stages.0.blocks.1.ffn.layers.0.0.weight' in converted
    assert 'stages.0.blocks.1.ffn.layers.1.bias' in converted
    assert 'stages.2.downsample.reduction.weight' in converted  # merging after stage 2
    assert 'patch_embed.projection.weight' in converted
    assert 'norm3.weight' in converted
    assert not [k for k in converted if k.startswith('head') or k.endswith('attn_mask')]
    model = SwinTransformer(**SWIN_KW)
    assert set(converted) == set(model.state_dict()) - {
        f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')
    }


def test_merging_weights_are_permuted_to_channel_major_order() -> None:
    # The release concatenates the 2x2 neighbours (0,0), (1,0), (0,1), (1,1) (dy, dx) and then
    # channels; our PatchMerging is channel-major with (dy, dx) in row-major order.
    torch.manual_seed(0)
    channels = 3
    norm = nn.LayerNorm(4 * channels)
    reduction = nn.Linear(4 * channels, 5, bias=False)
    nn.init.uniform_(norm.weight, 0.5, 1.5)
    nn.init.uniform_(norm.bias, -0.5, 0.5)
    x = torch.randn(2, 6, 8, channels)
    neighbours = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
    expected = reduction(norm(torch.cat(neighbours, dim=-1)))

    official = {
        'layers.0.downsample.norm.weight': norm.weight.detach(),
        'layers.0.downsample.norm.bias': norm.bias.detach(),
        'layers.0.downsample.reduction.weight': reduction.weight.detach(),
    }
    converted = convert_swin_official(official)
    ours = PatchMerging(channels, 5, norm=True, norm_eps=1e-5)
    ours.load_state_dict({k.split('downsample.')[1]: v for k, v in converted.items()})
    torch.testing.assert_close(ours(x), expected, atol=1e-6, rtol=1e-5)


def test_official_convnext_conversion() -> None:
    official = official_convnext_state(timm_convnext())
    converted = convert_convnext_official(official)
    model = ConvNeXt(CONVNEXT_ARCH)
    assert set(converted) == set(model.state_dict()) - {
        f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')
    }
    assert torch.equal(
        converted['stages.2.1.depthwise_conv.weight'], official['stages.2.1.dwconv.weight']
    )
    assert torch.equal(converted['norm3.bias'], official['norm.bias'])


def test_convert_timm_for_each_backbone_kind() -> None:
    resnet = timm.create_model('resnet18').state_dict()
    converted = convert_timm(resnet, ResNet(18))
    assert 'fc.weight' not in converted and set(converted) == set(ResNet(18).state_dict())
    with pytest.raises(TypeError, match='not an instseg backbone'):
        convert_timm(resnet, nn.Linear(2, 2))


def test_convert_for_backbone_rejects_foreign_layouts_with_examples() -> None:
    state = {'visual.conv1.weight': torch.zeros(1), 'visual.ln_pre.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match=r'clip\.pt: an unknown layout .*visual\.conv1\.weight'):
        convert_for_backbone(state, ResNet(18), source='clip.pt')
    swin_state = timm_swin().state_dict()
    with pytest.raises(ValueError, match="layout 'swin_timm' does not fit a ConvNeXt"):
        convert_for_backbone(swin_state, ConvNeXt(CONVNEXT_ARCH), source='swin.safetensors')
