"""A SIGKILL while a new checkpoint is written never costs the old one: with max_keep_ckpts=1 and
with save_best, the file being replaced survives, last_checkpoint names an existing file, and
--resume continues from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import ROOT, write_tiny_config

from instseg.checkpoint import load_checkpoint_file

pytestmark = pytest.mark.e2e

ENV = dict(
    os.environ, OMP_NUM_THREADS='1', PYTHONPATH=f'{ROOT}{os.pathsep}{ROOT / "tests" / "e2e"}'
)

CHILD = """
import os, sys, time
from mmengine.config import Config
from mmengine.fileio.backends.local_backend import LocalBackend
from instseg.engine import Runner

cfg_path, work_dir, marker, target = sys.argv[1:5]
real_put = LocalBackend.put


def slow_put(self, obj, filepath):
    # the file being replaced: write half of it, say so, then hang until killed
    if os.path.basename(str(filepath)).startswith(f'.{target}.tmp.'):
        with open(filepath, 'wb') as f:
            f.write(obj[: len(obj) // 2])
            f.flush()
        open(marker, 'w').close()
        time.sleep(600)
    return real_put(self, obj, filepath)


LocalBackend.put = slow_put
cfg = Config.fromfile(cfg_path)
cfg.work_dir = work_dir
Runner.from_cfg(cfg).train()
"""

CASES = {
    # rotation: epoch_2.pth replaces epoch_1.pth
    'max_keep_ckpts': (
        'default_hooks = dict(checkpoint=dict(max_keep_ckpts=1, save_best=None), curves=None)\n'
        'train_cfg = dict(val_interval=10)',
        'epoch_2.pth',
    ),
    # the best file of epoch 2 (every epoch scores higher) replaces epoch 1's
    'save_best': (
        "custom_imports = dict(imports=['epoch_score'], allow_failed_imports=False)\n"
        "val_evaluator = dict(_delete_=True, type='EpochScore')\n"
        "default_hooks = dict(checkpoint=dict(save_best='epoch/score', rule='greater'), "
        'curves=None, visualization=None)',
        'best_epoch_score_epoch_2.pth',
    ),
}


def _kill_while_writing(tmp_path: Path, extra: str, target: str) -> tuple[Path, Path]:
    cfg = write_tiny_config(tmp_path, num_train=2, num_val=1, epochs=2, extra=extra)
    work_dir, marker = tmp_path / 'work', tmp_path / 'writing'
    (tmp_path / 'child.py').write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / 'child.py'), str(cfg), str(work_dir), str(marker), target],
        cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), child.stderr.read().decode()[-3000:] if child.poll() else 'timeout'
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stderr.close()
    return cfg, work_dir


@pytest.mark.parametrize('case', sorted(CASES))
def test_sigkill_while_replacing_a_checkpoint_keeps_the_old_one(tmp_path: Path, case: str) -> None:
    extra, target = CASES[case]
    cfg, work_dir = _kill_while_writing(tmp_path, extra, target)
    assert len(list(work_dir.glob(f'.{target}.tmp.*'))) == 1  # killed mid-write
    assert not (work_dir / target).exists()
    survivor = 'epoch_1.pth' if case == 'max_keep_ckpts' else 'best_epoch_score_epoch_1.pth'
    assert load_checkpoint_file(str(work_dir / survivor))['meta']['epoch'] == 1
    pointer = Path((work_dir / 'last_checkpoint').read_text().strip())
    assert pointer.is_file() and pointer.parent == work_dir

    # --resume continues from the surviving file, as a user runs it
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'train.py'), str(cfg), '--work-dir', str(work_dir),
         '--resume', '--cfg-options', 'train_cfg.max_epochs=3'],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f'resumed epoch: {pointer.stem.split("_")[-1]}' in out
    assert not list(work_dir.glob('.*.tmp.*'))  # the dead writer's leftover is gone
    if case == 'max_keep_ckpts':
        assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_3.pth']
    else:
        assert sorted(p.name for p in work_dir.glob('best_*.pth')) == [
            'best_epoch_score_epoch_3.pth'
        ]
