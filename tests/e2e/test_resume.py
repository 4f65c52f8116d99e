"""Interrupted runs: resuming continues exactly, and a SIGKILL mid-write loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from tiny import ROOT, write_tiny_config

from instseg.checkpoint import latest_checkpoint, load_checkpoint_file, remove_stale_temp_files
from instseg.engine import Runner

pytestmark = pytest.mark.e2e

# Warm-up across the epoch boundary and a step at epoch 1 make the schedule's state matter;
# AdamW's moments the optimiser's; a loss scale that doubles every step the AMP scaler's; random
# flips (numpy) and RoI sampling (torch) the generators'.
RESUME_EXTRA = """
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=2, milestones=[1], gamma=0.5),
]
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                     loss_scale=dict(init_scale=256.0, growth_interval=1))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3), curves=None, visualization=None)
"""


def _runner(cfg_path: Path, work_dir: Path, name: str, **overrides) -> Runner:
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name  # runs in one process must not share a message hub
    cfg.merge_from_dict(overrides)
    return Runner.from_cfg(cfg)


def _rng() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1]


def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = write_tiny_config(tmp_path, num_train=4, num_val=2, epochs=2, extra=RESUME_EXTRA)

    full = _runner(cfg, tmp_path / 'full', 'full')
    full.train()
    full_rng = _rng()

    # The work dir of a run stopped after epoch 1 (its validation and best checkpoint included)
    # holds exactly the files the full run had written by then; no file is rewritten later.
    split = tmp_path / 'split'
    split.mkdir()
    for path in (tmp_path / 'full').glob('*epoch_1.pth'):
        shutil.copy(path, split / path.name)
    (split / 'last_checkpoint').write_text(str(split / 'epoch_1.pth'))

    resumed = _runner(cfg, split, 'second_half', resume=True)  # auto: the latest checkpoint
    resumed.train()

    assert resumed.epoch == full.epoch == 2 and resumed.iter == full.iter == 4
    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    for key, value in full_state.items():
        torch.testing.assert_close(resumed_state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    full_optim = full.optim_wrapper.state_dict()
    resumed_optim = resumed.optim_wrapper.state_dict()
    assert resumed_optim['loss_scaler'] == full_optim['loss_scaler']
    assert full_optim['loss_scaler']['scale'] == 256.0 * 2**4  # doubled at each of 4 steps
    for p_full, p_resumed in zip(
        full_optim['state'].values(), resumed_optim['state'].values(), strict=True
    ):
        torch.testing.assert_close(p_resumed['exp_avg'], p_full['exp_avg'], rtol=1e-5, atol=1e-7)
    assert resumed.optim_wrapper.get_lr() == full.optim_wrapper.get_lr()
    assert [s.last_step for s in resumed.param_schedulers] == [
        s.last_step for s in full.param_schedulers
    ]
    # the random streams ended in the same place, so they were restored where they stopped
    assert torch.equal(_rng()[0], full_rng[0]) and np.array_equal(_rng()[1], full_rng[1])
    # the best-metric record came back: the resumed run compared epoch 2 with epoch 1's score
    assert resumed.message_hub.get_info('best_score') == full.message_hub.get_info('best_score')
    best = sorted(p.name for p in (tmp_path / 'full').glob('best_*.pth'))
    assert sorted(p.name for p in split.glob('best_*.pth')) == best and len(best) == 1


CHILD = """
import os, sys, time
from mmengine.config import Config
from mmengine.fileio.backends.local_backend import LocalBackend
from instseg.engine import Runner

cfg_path, work_dir, marker = sys.argv[1:4]
real_put = LocalBackend.put


def slow_put(self, obj, filepath):
    # the second epoch's checkpoint: write half of it, then hang until killed
    if os.path.basename(str(filepath)).startswith('.epoch_2.pth.tmp.'):
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


def test_sigkill_while_writing_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    cfg = write_tiny_config(
        tmp_path,
        num_train=2,
        num_val=1,
        epochs=2,
        extra='train_cfg = dict(val_interval=10)\ndefault_hooks = dict(curves=None)',
    )
    work_dir, marker = tmp_path / 'work', tmp_path / 'writing'
    (tmp_path / 'child.py').write_text(CHILD)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / 'child.py'), str(cfg), str(work_dir), str(marker)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), child.stderr.read().decode()[-3000:] if child.poll() else 'timeout'
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stderr.close()

    partial = list(work_dir.glob('.epoch_2.pth.tmp.*'))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # killed mid-write
    assert not (work_dir / 'epoch_2.pth').exists()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    previous = load_checkpoint_file(str(work_dir / 'epoch_1.pth'))
    assert previous['meta']['epoch'] == 1
    assert all(
        torch.isfinite(v).all() for v in previous['state_dict'].values() if v.is_floating_point()
    )
    # --resume takes epoch 1, and the next run clears the dead writer's leftover
    assert latest_checkpoint(str(work_dir)) == str(work_dir / 'epoch_1.pth')
    assert remove_stale_temp_files(str(work_dir)) == [str(partial[0])]
