"""ConvNeXt: mmpretrain's names, timm's numbers, output norms, freezing, checkpointing."""

from __future__ import annotations

import pytest
import timm
import torch
from backbone_sources import (
    CONVNEXT_ARCH,
    assert_features_equal,
    timm_convnext,
    timm_features,
    with_out_norms,
)

from instseg.checkpoint.convert.backbones import convert_timm
from instseg.models.backbones import ConvNeXt
from instseg.registry import MODELS


def test_convnext_tiny_keys_channels_and_timm_parameter_count() -> None:
    with torch.device('meta'):
        model = ConvNeXt('tiny')
        reference = timm.create_model('convnext_tiny', pretrained=False)
    keys = model.state_dict().keys()
    for key in (
        'downsample_layers.0.0.weight',  # stem conv
        'downsample_layers.0.1.weight',  # stem LayerNorm
        'downsample_layers.3.0.bias',  # LayerNorm before the last downsampling conv
        'downsample_layers.3.1.weight',
        'stages.2.8.depthwise_conv.weight',
        'stages.2.8.norm.weight',
        'stages.2.8.pointwise_conv1.weight',
        'stages.2.8.pointwise_conv2.bias',
        'stages.2.8.gamma',
        'norm0.weight',
        'norm3.bias',
    ):
        assert key in keys, key
    assert model.out_channels == [96, 192, 384, 768]
    assert model.strides == [4, 8, 16, 32]
    timm_params = sum(p.numel() for n, p in reference.named_parameters() if 'head.fc' not in n)
    # timm's head norm (768 ch) becomes norm3; norm0-2 are extra.
    assert sum(p.numel() for p in model.parameters()) == timm_params + 2 * (96 + 192 + 384)


@pytest.mark.parametrize(
    ('arch', 'depths', 'channels'),
    [
        ('small', [3, 3, 27, 3], [96, 192, 384, 768]),
        ('base', [3, 3, 27, 3], [128, 256, 512, 1024]),
        ('large', [3, 3, 27, 3], [192, 384, 768, 1536]),
    ],
)
def test_arch_settings(arch: str, depths: list[int], channels: list[int]) -> None:
    with torch.device('meta'):
        model = ConvNeXt(arch)
    assert [len(stage) for stage in model.stages] == depths
    assert model.out_channels == channels


def test_features_match_timm_after_conversion() -> None:
    reference = timm_convnext()
    model = ConvNeXt(CONVNEXT_ARCH).eval()
    missing, unexpected = model.load_state_dict(convert_timm(reference.state_dict(), model), False)
    assert sorted(missing) == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert unexpected == []
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours = model(x)
    assert_features_equal(ours, with_out_norms(model, timm_features(reference, x)))


@pytest.mark.parametrize('size', [(50, 70), (64, 97)])
def test_any_input_size_gives_ceil_strides(size: tuple[int, int]) -> None:
    model = ConvNeXt(CONVNEXT_ARCH).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = size
    assert [tuple(o.shape) for o in outs] == [
        (1, c, -(-h // s), -(-w // s))
        for c, s in zip(model.out_channels, model.strides, strict=True)
    ]


def test_out_indices_gap_and_layer_scale() -> None:
    model = ConvNeXt(CONVNEXT_ARCH, out_indices=(3,), gap_before_final_norm=True).eval()
    assert not hasattr(model, 'norm0')
    (pooled,) = model(torch.randn(2, 3, 64, 64))
    assert pooled.shape == (2, 128)
    assert torch.equal(model.stages[0][0].gamma, torch.full((16,), 1e-6))
    no_scale = ConvNeXt(CONVNEXT_ARCH, layer_scale_init_value=0.0)
    assert no_scale.stages[0][0].gamma is None


def test_frozen_stages_follow_mmpretrain() -> None:
    model = ConvNeXt(CONVNEXT_ARCH, frozen_stages=2).train()
    for name, param in model.named_parameters():
        frozen = name.startswith(
            ('downsample_layers.0.', 'downsample_layers.1.', 'stages.0.', 'stages.1.')
        )
        assert param.requires_grad is not frozen, name
    assert not model.stages[1].training and model.stages[2].training


def test_with_cp_gives_same_gradients(monkeypatch) -> None:
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get('use_reentrant'))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', counting)
    plain = ConvNeXt(CONVNEXT_ARCH, drop_path_rate=0.3, frozen_stages=1).train()
    checkpointed = ConvNeXt(CONVNEXT_ARCH, drop_path_rate=0.3, frozen_stages=1, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.train()
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)
        sum(out.square().mean() for out in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert calls == [False] * 4  # the blocks of stages 1-3 (1 + 2 + 1); stage 0 is frozen
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_registry_and_init_from_scratch() -> None:
    model = MODELS.build(dict(type='ConvNeXt', arch=CONVNEXT_ARCH, layer_scale_init_value=1.0))
    model.init_weights()
    assert 0.015 < model.stages[2][1].pointwise_conv1.weight.std() < 0.025
    assert torch.equal(model.stages[2][1].pointwise_conv1.bias, torch.zeros(256))
    assert torch.equal(model.stages[0][0].gamma, torch.ones(16))


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        (dict(arch='huge'), 'arch'),
        (dict(arch=dict(depths=[1, 1], channels=[8])), 'arch'),
        (dict(out_indices=(1, 0)), 'out_indices'),
        (dict(frozen_stages=-1), 'frozen_stages'),
    ],
)
def test_convnext_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConvNeXt(**kwargs)
