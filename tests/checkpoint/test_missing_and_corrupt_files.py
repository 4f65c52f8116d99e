"""Missing weights fail before datasets are built (17.7), the README's pretrained override merges
into the shipped configs (17.8), truncated files are named as such (17.9)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
from e2e.tiny import write_tiny_config
from mmengine.config import Config

from instseg.checkpoint import CorruptCheckpointError, MissingWeightsError, load_checkpoint_file
from instseg.engine.config import load_config
from instseg.models.backbones import ResNet

ROOT = Path(__file__).resolve().parents[2]
MASK_RCNN = ROOT / 'configs' / 'mask_rcnn' / 'mask_rcnn_r50_fpn_1x_coco.py'
CASCADE = ROOT / 'configs' / 'cascade_rcnn' / 'cascade_mask_rcnn_r50_fpn_1x_coco.py'


def _tool(name: str):
    return runpy.run_path(str(ROOT / 'tools' / name))['main']


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.chdir(tmp_path)
    return tmp_path / 'torch_home'


def test_missing_pretrained_url_fails_before_the_datasets_are_built(tmp_path, torch_home) -> None:
    extra = (
        "model = dict(backbone=dict(init_cfg=dict(type='Pretrained', "
        "checkpoint='torchvision://resnet18')))"
    )
    cfg = write_tiny_config(tmp_path, num_train=2, num_val=2, epochs=1, extra=extra)
    args = [str(cfg), '--work-dir', str(tmp_path / 'work')]
    with pytest.raises(MissingWeightsError, match='before building the datasets') as raised:
        _tool('train.py')([*args, '--cfg-options', 'experiment_name=missing_pretrained'])
    message = str(raised.value)
    assert str(torch_home / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth') in message
    assert 'https://download.pytorch.org/models/resnet18-f37072fd.pth' in message
    assert not (tmp_path / 'data').exists()  # the demo dataset was never generated


def test_missing_load_from_fails_before_the_datasets_are_built(tmp_path, torch_home) -> None:
    cfg = write_tiny_config(tmp_path, num_train=2, num_val=2, epochs=1)
    missing = tmp_path / 'checkpoints' / 'mask_rcnn_r50_fpn_1x_coco.pth'
    with pytest.raises(MissingWeightsError, match='mask_rcnn_r50_fpn_1x_coco.pth does not exist'):
        _tool('train.py')(
            [str(cfg), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
             f'load_from={missing}', 'experiment_name=missing_load_from']
        )  # fmt: skip
    assert not (tmp_path / 'data').exists()


def test_tools_test_with_a_url_checkpoint_not_on_disk(tmp_path, torch_home) -> None:
    cfg = write_tiny_config(tmp_path, num_train=2, num_val=2, epochs=1)
    url = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/x/mask_rcnn_x_20200205.pth'
    with pytest.raises(MissingWeightsError, match=r'checkpoints/mask_rcnn_x_20200205\.pth'):
        _tool('test.py')([str(cfg), url, '--work-dir', str(tmp_path / 'work')])
    assert not (tmp_path / 'data').exists()


@pytest.mark.parametrize('config', [MASK_RCNN, CASCADE])
def test_readme_pretrained_override_merges_into_shipped_configs(tmp_path, config) -> None:
    weights = 'checkpoints/resnet50-0676ba61.pth'
    child = tmp_path / 'with_weights.py'
    child.write_text(
        f"_base_ = ['{config}']\n"
        f"model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='{weights}')))\n"
    )
    assert Config.fromfile(child).model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=weights
    )
    options = {
        'model.backbone.init_cfg.type': 'Pretrained',
        'model.backbone.init_cfg.checkpoint': weights,
    }
    cfg = load_config(str(config), options, str(tmp_path / 'work'))
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=weights)


def test_truncated_checkpoint_is_named_and_called_truncated(tmp_path) -> None:
    path = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': ResNet(18).state_dict(), 'meta': {'epoch': 3}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r'epoch_3\.pth .*looks truncated'):
        load_checkpoint_file(str(path))
    # the same through a backbone's init_cfg
    model = ResNet(18, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CorruptCheckpointError, match=r'epoch_3\.pth .*looks truncated'):
        model.init_weights()
