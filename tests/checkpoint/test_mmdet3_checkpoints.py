"""Checkpoints that mmdetection 3.x writes load for load_from and tools/test.py (issue 16.4)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from e2e.tiny import write_tiny_config
from mmdet3_checkpoint import pickled_names, same_weights, write_mmdet3_checkpoint
from mmengine.config import Config

from instseg.checkpoint import TRUST_ENV, load_checkpoint_file
from instseg.engine import Runner
from instseg.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ('ellipse', 'rectangle', 'triangle', 'ring')


@pytest.fixture
def mmdet3_file(tmp_path: Path, monkeypatch) -> dict:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    cfg_path = write_tiny_config(tmp_path, num_train=2, num_val=2, epochs=1)
    cfg = Config.fromfile(cfg_path)
    model = MODELS.build(cfg.model)
    path = tmp_path / 'epoch_12.pth'
    written = write_mmdet3_checkpoint(model, path, CLASSES)
    return dict(cfg=cfg_path, path=path, written=written, tmp=tmp_path)


def test_the_file_holds_what_mmdet3_writes_and_loads_without_trust(mmdet3_file) -> None:
    names = pickled_names(mmdet3_file['path'])
    assert 'numpy.core.multiarray._reconstruct' in names  # numpy 1.x's name
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in names
    loaded = load_checkpoint_file(str(mmdet3_file['path']))
    assert set(loaded) == {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}
    assert loaded['meta']['dataset_meta']['classes'] == CLASSES
    assert loaded['meta']['experiment_name'].startswith('mask-rcnn_r50_fpn_1x_coco')
    loss = loaded['message_hub']['log_scalars']['train/loss']
    assert loss.current() == pytest.approx(1.25)
    assert dict(loaded['param_schedulers'][1]['milestones']) == {8: 1, 11: 1}
    assert loaded['optimizer']['state'], 'momentum buffers'


def test_load_from_takes_the_weights(mmdet3_file) -> None:
    cfg = Config.fromfile(mmdet3_file['cfg'])
    cfg.work_dir = str(mmdet3_file['tmp'] / 'work')
    cfg.experiment_name = 'test_mmdet3_load_from'
    runner = Runner.from_cfg(cfg)
    checkpoint = runner.load_checkpoint(str(mmdet3_file['path']))
    assert checkpoint['meta']['epoch'] == 12
    assert same_weights(runner.model, mmdet3_file['written']['state_dict'])


def test_tools_test_evaluates_it(mmdet3_file) -> None:
    main = runpy.run_path(str(ROOT / 'tools' / 'test.py'))['main']
    metrics = main(
        [
            str(mmdet3_file['cfg']),
            str(mmdet3_file['path']),
            '--work-dir',
            str(mmdet3_file['tmp'] / 'test_work'),
            '--cfg-options',
            'experiment_name=test_mmdet3_tools_test',
        ]
    )
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0
