"""init_cfg=dict(type='Pretrained', checkpoint=PATH) from every supported kind of file.

Each source is a randomly initialised timm or torchvision model saved the way its library (or the
official release, see backbone_sources) ships it; the loaded backbone must give the source
model's feature maps.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from backbone_sources import (
    CONVNEXT_ARCH,
    SWIN_KW,
    SWIN_SIZE,
    assert_features_equal,
    official_convnext_state,
    official_swin_state,
    timm_convnext,
    timm_features,
    timm_swin,
    with_out_norms,
)
from safetensors.torch import save_file
from torchvision.models._utils import IntermediateLayerGetter

from instseg.checkpoint import load, pretrained
from instseg.models.backbones import ConvNeXt, ResNet, SwinTransformer, swin


def _pretrained(path, **kwargs) -> dict:
    return dict(type='Pretrained', checkpoint=str(path), **kwargs)


def _save_safetensors(state: dict, path) -> None:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.fixture
def logged(monkeypatch) -> list[str]:
    messages: list[str] = []
    for module in (load, swin):
        monkeypatch.setattr(module, 'print_log', lambda msg, *a, **k: messages.append(msg))
    return messages


@pytest.mark.parametrize('kind', ['official_pth', 'timm_safetensors', 'mmdet_detector'])
def test_swin_loads_each_layout_and_matches_timm(tmp_path, kind: str, logged) -> None:
    reference = timm_swin()
    if kind == 'official_pth':
        path = tmp_path / 'swin_tiny_patch4_window7_224.pth'
        torch.save({'model': official_swin_state(reference)}, path)
    elif kind == 'timm_safetensors':
        path = tmp_path / 'model.safetensors'
        _save_safetensors(reference.state_dict(), path)
    else:  # an mmdetection 3.x detector checkpoint: our keys under 'backbone.' plus other modules
        source = SwinTransformer(**SWIN_KW)
        source.init_weights()
        source.load_state_dict(
            {**source.state_dict(), **_converted_swin(reference, source)}, strict=True
        )
        state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
        state['neck.lateral_convs.0.conv.weight'] = torch.zeros(8, 32, 1, 1)
        path = tmp_path / 'mask_rcnn_swin.pth'
        torch.save({'state_dict': state, 'meta': {'epoch': 12}}, path)

    model = SwinTransformer(**SWIN_KW, convert_weights=True, init_cfg=_pretrained(path))
    model.init_weights()
    x = torch.randn(1, 3, *SWIN_SIZE)
    with torch.no_grad():
        ours = model.eval()(x)
    assert_features_equal(ours, with_out_norms(model, timm_features(reference, x)))
    # The classifier's final norm starts the last output norm.
    assert torch.equal(model.norm3.weight, reference.norm.weight)
    if kind != 'mmdet_detector':
        assert any('missing' in m and 'norm0.weight' in m for m in logged)


def _converted_swin(reference, model) -> dict:
    from instseg.checkpoint.convert.backbones import convert_timm

    return model.adapt_pretrained_state(convert_timm(reference.state_dict(), model))


@pytest.mark.parametrize('kind', ['official_pth', 'timm_safetensors', 'mmpretrain_prefixed'])
def test_convnext_loads_each_layout_and_matches_timm(tmp_path, kind: str) -> None:
    reference = timm_convnext()
    prefix = None
    if kind == 'official_pth':
        path = tmp_path / 'convnext_tiny_1k_224.pth'
        torch.save({'model': official_convnext_state(reference)}, path)
    elif kind == 'timm_safetensors':
        path = tmp_path / 'model.safetensors'
        _save_safetensors(reference.state_dict(), path)
    else:  # mmdetection's ConvNeXt configs load mmpretrain classifiers with prefix='backbone.'
        source = ConvNeXt(CONVNEXT_ARCH, init_cfg=_pretrained(tmp_path / 'o.pth'))
        torch.save({'model': official_convnext_state(reference)}, tmp_path / 'o.pth')
        source.init_weights()
        state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
        state['head.fc.weight'] = torch.zeros(10, 128)
        path = tmp_path / 'convnext-tiny_mmpretrain.pth'
        torch.save({'state_dict': state}, path)
        prefix = 'backbone.'

    model = ConvNeXt(CONVNEXT_ARCH, init_cfg=_pretrained(path, prefix=prefix))
    model.init_weights()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours = model.eval()(x)
    assert_features_equal(ours, with_out_norms(model, timm_features(reference, x)))


def test_torchvision_resnet50_file_matches_torchvision(tmp_path) -> None:
    reference = torchvision.models.resnet50(weights=None)
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / 'resnet50-0676ba61.pth'
    torch.save(reference.state_dict(), path)
    model = ResNet(50, init_cfg=_pretrained(path))
    # The same keys as torchvision's (less the classifier), hence as mmdetection's.
    assert set(model.state_dict()) == {k for k in reference.state_dict() if not k.startswith('fc.')}
    model.init_weights()
    getter = IntermediateLayerGetter(reference.eval(), {f'layer{i}': str(i) for i in range(1, 5)})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model.eval()(x), list(getter(x).values())
    for our, their in zip(ours, theirs, strict=True):
        torch.testing.assert_close(our, their, atol=1e-5, rtol=1e-5)


def test_timm_resnet18_safetensors_matches_timm(tmp_path, logged) -> None:
    reference = timm.create_model('resnet18', pretrained=False).eval()
    path = tmp_path / 'model.safetensors'
    _save_safetensors(reference.state_dict(), path)
    model = ResNet(18, init_cfg=_pretrained(path))
    model.init_weights()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = model.eval()(x)
        theirs = reference.forward_intermediates(x, indices=(1, 2, 3, 4), intermediates_only=True)
    for our, their in zip(ours, theirs, strict=True):
        torch.testing.assert_close(our, their, atol=1e-5, rtol=1e-5)
    assert not any('missing' in m for m in logged)  # fc.* is the only thing left out


def test_window_size_change_resizes_relative_position_tables(tmp_path, logged) -> None:
    path = tmp_path / 'swin_w4.pth'
    torch.save({'model': official_swin_state(timm_swin())}, path)
    model = SwinTransformer(**{**SWIN_KW, 'window_size': 6}, init_cfg=_pretrained(path))
    model.init_weights()
    attn = model.stages[1].blocks[1].attn.w_msa
    assert attn.relative_position_bias_table.shape == (11 * 11, 2)
    assert attn.relative_position_index.shape == (36, 36)
    assert any('resized (49, 2) -> (121, 2)' in m for m in logged)
    assert torch.isfinite(model(torch.randn(1, 3, 64, 64))[-1]).all()


def test_missing_and_unused_keys_are_reported_by_name(tmp_path, logged) -> None:
    state = official_swin_state(timm_swin())
    state['extra.weight'] = torch.zeros(3)
    del state['layers.2.blocks.1.norm2.bias']
    path = tmp_path / 'swin.pth'
    torch.save({'model': state}, path)
    missing, unexpected = pretrained.load_pretrained(SwinTransformer(**SWIN_KW), str(path))
    assert 'stages.2.blocks.1.norm2.bias' in missing and 'norm0.weight' in missing
    assert unexpected == ['extra.weight']
    assert any('stages.2.blocks.1.norm2.bias' in m for m in logged)
    assert any('unused: extra.weight' in m for m in logged)


def test_shape_mismatch_names_key_and_both_shapes(tmp_path) -> None:
    state = official_swin_state(timm_swin())
    state['layers.0.blocks.0.mlp.fc1.weight'] = torch.zeros(100, 32)
    path = tmp_path / 'swin.pth'
    torch.save({'model': state}, path)
    model = SwinTransformer(**SWIN_KW, init_cfg=_pretrained(path))
    with pytest.raises(ValueError, match=r'(?s)swin\.pth into SwinTransformer: 1 tensor.*'
                       r'stages\.0\.blocks\.0\.ffn\.layers\.0\.0\.weight: '
                       r'checkpoint \(100, 32\), model \(128, 32\)'):  # fmt: skip
        model.init_weights()


def test_unknown_or_foreign_layouts_fail_naming_file_and_keys(tmp_path) -> None:
    unknown = tmp_path / 'mystery.pth'
    torch.save(
        {'encoder.stem.weight': torch.zeros(1), 'encoder.blocks.0.w': torch.zeros(1)}, unknown
    )
    with pytest.raises(
        ValueError, match=r'mystery\.pth: an unknown layout .*encoder\.stem\.weight'
    ):
        SwinTransformer(**SWIN_KW, init_cfg=_pretrained(unknown)).init_weights()

    convnext_file = tmp_path / 'convnext.pth'
    torch.save({'model': official_convnext_state(timm_convnext())}, convnext_file)
    with pytest.raises(
        ValueError, match="layout 'convnext_official' does not fit a SwinTransformer"
    ):
        SwinTransformer(**SWIN_KW, init_cfg=_pretrained(convnext_file)).init_weights()


def test_missing_file_fails_clearly(tmp_path) -> None:
    path = tmp_path / 'checkpoints' / 'swin_tiny_patch4_window7_224.pth'
    model = SwinTransformer(**SWIN_KW, init_cfg=_pretrained(path))
    with pytest.raises(FileNotFoundError, match='swin_tiny_patch4_window7_224.pth do not exist'):
        model.init_weights()


def test_prefix_without_matching_keys_and_empty_files_fail(tmp_path) -> None:
    path = tmp_path / 'resnet.pth'
    torch.save(ResNet(18).state_dict(), path)
    with pytest.raises(KeyError, match="no key starting with 'backbone.'"):
        ResNet(18, init_cfg=_pretrained(path, prefix='backbone.')).init_weights()
    empty = tmp_path / 'empty.pth'
    torch.save({'meta': {'epoch': 1}}, empty)
    with pytest.raises(ValueError, match='empty.pth holds no weights'):
        ResNet(18, init_cfg=_pretrained(empty)).init_weights()


def test_other_init_cfg_entries_run_before_the_pretrained_file(tmp_path) -> None:
    source = ResNet(18)
    path = tmp_path / 'resnet18.pth'
    torch.save(source.state_dict(), path)
    model = ResNet(18, init_cfg=[dict(type='Constant', layer='Conv2d', val=0.5), _pretrained(path)])
    model.init_weights()
    assert torch.equal(model.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
