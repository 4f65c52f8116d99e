"""tools/train.py, tools/test.py and --resume as a user runs them, in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import ROOT, write_tiny_config

pytestmark = pytest.mark.e2e


def run_tool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def scalars(work_dir: Path) -> list[dict]:
    (path,) = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp('e2e')
    cfg = write_tiny_config(tmp)
    work_dir = tmp / 'work'
    run_tool(str(ROOT / 'tools' / 'train.py'), str(cfg), '--work-dir', str(work_dir), cwd=tmp)
    return cfg, work_dir


def test_train_writes_checkpoints_logs_and_metrics(trained) -> None:
    cfg, work_dir = trained
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint', 'tiny_demo.py'):
        assert (work_dir / name).exists(), name
    assert len(list(work_dir.glob('best_coco_segm_mAP_epoch_*.pth'))) == 1
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')
    rows = scalars(work_dir)
    train_rows = [r for r in rows if 'loss' in r]
    val_rows = [r for r in rows if 'coco/segm_mAP' in r]
    assert len(train_rows) == 6  # 3 iterations x 2 epochs, logged every iteration
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in train_rows)
    assert [r['step'] for r in val_rows] == [1, 2]
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP_75', 'coco/segm_mAP_s'):
        assert key in val_rows[0]
    ckpt = torch.load(work_dir / 'epoch_2.pth', weights_only=False)
    assert ckpt['meta']['epoch'] == 2
    assert 'roi_head.mask_head.conv_logits.weight' in ckpt['state_dict']
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(ckpt)


def test_test_tool_prints_coco_tables(trained, tmp_path: Path) -> None:
    cfg, work_dir = trained
    proc = run_tool(
        str(ROOT / 'tools' / 'test.py'), str(cfg), str(work_dir / 'epoch_2.pth'),
        '--eval', 'bbox', 'segm', '--work-dir', str(tmp_path / 'test'), cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert 'Average Precision' in out
    assert 'coco/bbox_mAP' in out and 'coco/segm_mAP' in out


def test_test_tool_eval_selects_metrics(trained, tmp_path: Path) -> None:
    cfg, work_dir = trained
    proc = run_tool(
        str(ROOT / 'tools' / 'test.py'), str(cfg), str(work_dir / 'epoch_1.pth'),
        '--eval', 'bbox', '--work-dir', str(tmp_path / 'test'), cwd=tmp_path,
    )  # fmt: skip
    lines = (proc.stdout + proc.stderr).splitlines()
    results = [line for line in lines if 'Epoch(test)' in line and 'coco/' in line]
    assert results
    assert all('coco/bbox_mAP' in r and 'coco/segm_mAP' not in r for r in results)


def test_resume_latest_continues_from_last_epoch(trained, tmp_path: Path) -> None:
    cfg, work_dir = trained
    resumed_dir = tmp_path / 'resumed'
    # copy the finished run and continue it for one more epoch
    resumed_dir.mkdir()
    for f in work_dir.iterdir():
        if f.is_file():
            (resumed_dir / f.name).write_bytes(f.read_bytes())
    (resumed_dir / 'last_checkpoint').write_text(str(resumed_dir / 'epoch_2.pth'))
    proc = run_tool(
        str(ROOT / 'tools' / 'train.py'), str(cfg), '--work-dir', str(resumed_dir), '--resume',
        '--cfg-options', 'train_cfg.max_epochs=3', cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert 'resumed epoch: 2' in out
    assert (resumed_dir / 'epoch_3.pth').exists()
    epochs = {r.get('epoch') for r in scalars(resumed_dir) if 'loss' in r}
    assert epochs == {3}


def test_resume_from_explicit_checkpoint(trained, tmp_path: Path) -> None:
    cfg, work_dir = trained
    new_dir = tmp_path / 'from_ckpt'
    proc = run_tool(
        str(ROOT / 'tools' / 'train.py'), str(cfg), '--work-dir', str(new_dir),
        '--resume', str(work_dir / 'epoch_1.pth'), cwd=tmp_path,
    )  # fmt: skip
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr
    assert (new_dir / 'epoch_2.pth').exists() and not (new_dir / 'epoch_1.pth').exists()


def test_train_tool_reports_missing_config(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'train.py'), 'configs/nope.py'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and 'configs/nope.py' in proc.stderr
