"""ResNet / ResNeXt: shapes, freezing, norms, checkpointing (weights: test_pretrained_loading)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from instseg.models.backbones import ResNet, ResNeXt
from instseg.registry import MODELS


def _randomise_norms(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)


def test_resnet18_output_shapes_and_strides() -> None:
    model = ResNet(18).eval()
    assert model.out_channels == [64, 128, 256, 512]
    assert model.strides == [4, 8, 16, 32]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert isinstance(outs, tuple)
    assert [tuple(out.shape) for out in outs] == [
        (1, 64, 16, 24),
        (1, 128, 8, 12),
        (1, 256, 4, 6),
        (1, 512, 2, 3),
    ]


def test_resnet_out_indices_and_num_stages_select_stages() -> None:
    model = ResNet(18, out_indices=(1, 3))
    assert model.out_channels == [128, 512]
    assert model.strides == [8, 32]
    outs = model.eval()(torch.randn(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 4, 4), (1, 512, 1, 1)]

    three = ResNet(18, num_stages=3, out_indices=(2,))
    assert not hasattr(three, 'layer4')
    assert three.out_channels == [256]
    assert three.strides == [16]


def test_frozen_stages_freeze_stem_and_first_stages() -> None:
    model = ResNet(18, frozen_stages=2, norm_eval=False)
    model.train()
    for name, param in model.named_parameters():
        frozen = name.startswith(('conv1.', 'bn1.', 'layer1.', 'layer2.'))
        assert param.requires_grad is not frozen, name
    assert not model.bn1.training
    assert not model.layer2[1].bn2.training
    assert model.layer3[0].bn1.training
    assert model.training


def test_norm_eval_keeps_running_stats_and_frozen_stage_stats() -> None:
    x = torch.randn(2, 3, 32, 32)

    evaluated = ResNet(18, norm_eval=True).train()
    before = copy.deepcopy(evaluated.state_dict())
    evaluated(x)
    assert all(not m.training for m in evaluated.modules() if isinstance(m, _BatchNorm))
    for key, value in evaluated.state_dict().items():
        torch.testing.assert_close(value, before[key], atol=0, rtol=0, msg=key)

    # Without norm_eval only the frozen stem/layer1 keep their statistics.
    trained = ResNet(18, frozen_stages=1, norm_eval=False).train()
    before = copy.deepcopy(trained.state_dict())
    trained(x)
    after = trained.state_dict()
    assert torch.equal(after['bn1.running_mean'], before['bn1.running_mean'])
    assert torch.equal(after['layer1.0.bn1.running_mean'], before['layer1.0.bn1.running_mean'])
    assert not torch.equal(after['layer2.0.bn1.running_mean'], before['layer2.0.bn1.running_mean'])


def test_resnext50_32x4d_groups_and_widths() -> None:
    model = ResNet(50, groups=32, base_width=4)
    # 3x3 conv width = floor(planes * 4 / 64) * 32: 128 in layer1, 1024 in layer4; the weight
    # shapes are those of torchvision's and mmdetection's resnext50_32x4d checkpoints.
    assert model.layer1[0].conv2.groups == 32
    assert tuple(model.layer1[0].conv2.weight.shape) == (128, 4, 3, 3)
    assert tuple(model.layer4[0].conv2.weight.shape) == (1024, 32, 3, 3)
    assert tuple(model.layer4[0].conv3.weight.shape) == (2048, 1024, 1, 1)
    assert model.out_channels == [256, 512, 1024, 2048]


def test_resnext_type_uses_mmdetection_defaults() -> None:
    registered = MODELS.build(
        dict(type='ResNeXt', depth=50, groups=32, base_width=4, num_stages=2, out_indices=(1,))
    )
    assert isinstance(registered, ResNeXt)
    assert registered.layer2[0].conv2.groups == 32
    assert registered.layer2[0].conv2.out_channels == 256
    # mmdetection's ResNeXt with groups=1 is a plain ResNet.
    plain = ResNeXt(50, num_stages=1, out_indices=(0,))
    assert plain.layer1[0].conv2.out_channels == 64


def test_group_norm_builds_and_runs() -> None:
    model = ResNet(18, norm_cfg=dict(type='GN', num_groups=32)).train()
    assert isinstance(model.bn1, nn.GroupNorm)
    assert model.layer3[0].downsample[1].num_groups == 32
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert 'layer1.0.bn1.weight' in model.state_dict()
    outs = model(torch.randn(1, 3, 64, 96))
    assert tuple(outs[-1].shape) == (1, 512, 2, 3)
    assert all(torch.isfinite(o).all() for o in outs)


def test_sync_bn_and_frozen_norm_params() -> None:
    sync = ResNet(18, norm_cfg=dict(type='SyncBN'))
    assert isinstance(sync.layer1[0].bn1, nn.SyncBatchNorm)

    frozen_norm = ResNet(18, norm_cfg=dict(type='BN', requires_grad=False))
    for name, param in frozen_norm.named_parameters():
        assert param.requires_grad is ('conv' in name or 'downsample.0' in name), name


def test_with_cp_gives_same_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting_checkpoint(*args, **kwargs):
        calls.append(kwargs.get('use_reentrant'))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', counting_checkpoint)
    plain = ResNet(18, frozen_stages=1).train()
    checkpointed = ResNet(18, frozen_stages=1, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for model in (plain, checkpointed):
        sum(out.square().mean() for out in model(x)).backward()
    # Two blocks in each of layer2..layer4; the frozen layer1 is not recomputed.
    assert calls == [False] * 6
    for (name, p_plain), p_cp in zip(
        plain.named_parameters(), checkpointed.parameters(), strict=True
    ):
        if p_plain.requires_grad:
            torch.testing.assert_close(p_cp.grad, p_plain.grad, atol=1e-6, rtol=1e-5, msg=name)

    calls.clear()
    with torch.no_grad():
        checkpointed(x)
    checkpointed.eval()(x)
    assert calls == []


def test_init_cfg_pretrained_loads_local_file(tmp_path) -> None:
    source = ResNet(18)
    _randomise_norms(source)
    state = dict(source.state_dict())
    # A torchvision-style file: the classifier keys are ignored.
    state['fc.weight'] = torch.zeros(1000, 512)
    state['fc.bias'] = torch.zeros(1000)
    path = tmp_path / 'resnet18.pth'
    torch.save(state, path)

    model = ResNet(18, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    assert not torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_registry_builds_resnet() -> None:
    model = MODELS.build(dict(type='ResNet', depth=18, out_indices=(3,)))
    assert isinstance(model, ResNet)
    assert model.out_channels == [512]


@pytest.mark.parametrize(
    ('kwargs', 'error', 'match'),
    [
        (dict(depth=20), ValueError, 'depth'),
        (dict(depth=50, style='caffe'), NotImplementedError, 'caffe'),
        (dict(depth=18, groups=32, base_width=4), ValueError, 'basic blocks'),
        (dict(depth=18, out_indices=(0, 4)), ValueError, 'out_indices'),
        (dict(depth=18, num_stages=3, out_indices=(3,)), ValueError, 'out_indices'),
        (dict(depth=18, frozen_stages=5), ValueError, 'frozen_stages'),
        (dict(depth=18, norm_cfg=dict(type='LN')), ValueError, "'LN'"),
        (dict(depth=18, norm_cfg=dict(type='GN')), ValueError, 'num_groups'),
    ],
)
def test_resnet_rejects_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ResNet(**kwargs)
