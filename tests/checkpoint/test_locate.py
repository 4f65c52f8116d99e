"""Weights named by URL: found in torch's hub cache or checkpoints/, never downloaded (16.3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision
from mmengine.runner.checkpoint import CheckpointLoader

from instseg.checkpoint import MissingWeightsError, locate_weights, read_state_dict
from instseg.checkpoint.locate import cached_file_name, hub_checkpoint_dir
from instseg.models.backbones import ResNet

SWIN_URL = (
    'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
    'swin_small_patch4_window7_224.pth'
)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch) -> Path:
    """An empty $TORCH_HOME, and a working directory without checkpoints/."""
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    monkeypatch.chdir(tmp_path)
    assert hub_checkpoint_dir() == str(home / 'hub' / 'checkpoints')
    return home


def test_url_names_map_to_the_files_torch_and_mmengine_would_cache() -> None:
    # the installed torchvision's own URL for its ResNet-50 IMAGENET1K_V1 weights
    v1 = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    assert cached_file_name('torchvision://resnet50') == 'resnet50-0676ba61.pth' == Path(v1).name
    assert cached_file_name('torchvision://resnet50.imagenet1k_v2') == 'resnet50-11ad3fa6.pth'
    assert cached_file_name('open-mmlab://resnext101_32x4d') == 'resnext101_32x4d-a5af3160.pth'
    assert cached_file_name(SWIN_URL) == 'swin_small_patch4_window7_224.pth'
    with pytest.raises(KeyError, match='resnet5O.*did you mean'):
        cached_file_name('torchvision://resnet5O')


def test_torchvision_url_loads_the_cached_file(torch_home: Path) -> None:
    source = torchvision.models.resnet18()  # torchvision's real state dict layout, random weights
    cached = torch_home / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    assert locate_weights('torchvision://resnet18') == str(cached)
    model = ResNet(18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18'))
    model.init_weights()
    assert torch.equal(model.state_dict()['layer4.1.conv2.weight'], source.layer4[1].conv2.weight)


def test_https_url_loads_a_file_in_checkpoints_dir(torch_home: Path) -> None:
    state = {'conv1.weight': torch.randn(2, 3, 1, 1), 'layer1.0.conv1.weight': torch.zeros(1)}
    Path('checkpoints').mkdir()
    torch.save({'model': state}, 'checkpoints/swin_small_patch4_window7_224.pth')
    assert locate_weights(SWIN_URL) == os.path.join('checkpoints', Path(SWIN_URL).name)
    assert torch.equal(read_state_dict(SWIN_URL)['conv1.weight'], state['conv1.weight'])
    # mmengine's own loading (load_from, init_cfg of mmengine modules) takes the same route
    loaded = CheckpointLoader.load_checkpoint(SWIN_URL, map_location='cpu')
    assert torch.equal(loaded['model']['conv1.weight'], state['conv1.weight'])


@pytest.mark.parametrize(
    ('name', 'file_name', 'url'),
    [
        (
            'torchvision://resnet50',
            'resnet50-0676ba61.pth',
            'https://download.pytorch.org/models/resnet50-0676ba61.pth',
        ),
        (
            'open-mmlab://resnext101_32x4d',
            'resnext101_32x4d-a5af3160.pth',
            'https://download.openmmlab.com/pretrain/third_party/resnext101_32x4d-a5af3160.pth',
        ),
        (SWIN_URL, 'swin_small_patch4_window7_224.pth', SWIN_URL),
    ],
)
def test_missing_url_file_says_what_to_put_where(torch_home, name, file_name, url) -> None:
    with pytest.raises(MissingWeightsError) as raised:
        locate_weights(name)
    message = str(raised.value)
    assert f'Download {url} ' in message
    assert str(torch_home / 'hub' / 'checkpoints' / file_name) in message
    assert os.path.join('checkpoints', file_name) in message
    assert not (torch_home / 'hub').exists()  # nothing was downloaded
    with pytest.raises(FileNotFoundError, match=file_name):  # nor through mmengine's loader
        CheckpointLoader.load_checkpoint(name, map_location='cpu')
