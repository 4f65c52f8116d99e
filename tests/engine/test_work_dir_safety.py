"""Work dirs: --resume that finds nothing says so, and a new run never overwrites another's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from engine_toy import toy_runner

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / 'configs' / 'demo' / 'mask_rcnn_r18_fpn_demo.py')


def _train_tool():
    spec = importlib.util.spec_from_file_location('train_tool', ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(work_dir: Path) -> str:
    return '\n'.join(p.read_text() for p in work_dir.glob('*/*.log'))


def test_resume_with_nothing_to_resume_warns_naming_the_folder(tmp_path: Path) -> None:
    work_dir = tmp_path / 'typo_in_work_dir'
    runner = toy_runner(work_dir, epochs=1, resume=True)
    runner.train()
    assert runner.epoch == 1  # trained from scratch
    warnings = [line for line in _log(work_dir).splitlines() if ' - WARNING - ' in line]
    assert any('no checkpoint to resume from' in w and str(work_dir) in w for w in warnings)


def test_explicit_resume_path_that_does_not_exist_stops(tmp_path: Path) -> None:
    missing = tmp_path / 'work' / 'epoch_3.pth'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        _train_tool().main([DEMO, '--resume', str(missing), '--work-dir', str(tmp_path / 'work')])
    assert not (tmp_path / 'work').exists()  # stopped before any work


def test_new_run_into_a_work_dir_with_checkpoints_is_refused(tmp_path: Path) -> None:
    first = toy_runner(tmp_path, epochs=1)
    first.train()
    stamp = (tmp_path / 'epoch_1.pth').read_bytes()
    second = toy_runner(tmp_path, epochs=2)
    with pytest.raises(FileExistsError, match='epoch_1.pth.*--resume'):
        second.train()
    assert second.iter == 0  # refused before the first iteration
    assert (tmp_path / 'epoch_1.pth').read_bytes() == stamp


def test_a_work_dir_with_only_logs_is_fine(tmp_path: Path) -> None:
    (tmp_path / '20260101_000000').mkdir()  # a previous run killed before its first checkpoint
    (tmp_path / 'notes.txt').write_text('mine')
    toy_runner(tmp_path, epochs=1).train()
    assert (tmp_path / 'epoch_1.pth').is_file() and (tmp_path / 'notes.txt').read_text() == 'mine'


@pytest.mark.parametrize('num_classes', [3, 6])
def test_heads_with_another_class_count_stop_before_the_first_iteration(
    tmp_path: Path, num_classes: int
) -> None:
    import sys

    from mmengine.config import Config

    from instseg.engine import Runner

    sys.path.insert(0, str(ROOT / 'tests' / 'e2e'))
    from tiny import write_tiny_config

    cfg = Config.fromfile(write_tiny_config(tmp_path, num_train=2, num_val=1, epochs=1))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'classes{num_classes}'
    cfg.merge_from_dict({'model.roi_head.bbox_head.num_classes': num_classes,
                         'model.roi_head.mask_head.num_classes': num_classes})  # fmt: skip
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
        ValueError, match=f'has 4 classes but roi_head.bbox_head \\({num_classes}\\)'
    ):
        runner.train()
    assert not list((tmp_path / 'work').glob('*.pth'))  # stopped while building the loop
