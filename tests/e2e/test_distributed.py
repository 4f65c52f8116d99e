"""Two training processes on CPU with gloo through tools/dist_train.sh (torchrun)."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import ROOT, write_tiny_config

pytestmark = pytest.mark.e2e

BASE_LR = 1e-3  # the demo config's AdamW lr
WORLD_SIZE = 2
BATCH_SIZE = 2  # per process, from tiny.py


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train_two_processes(tmp: Path) -> dict:
    probe_dir = tmp / 'probe'
    probe_dir.mkdir(parents=True)
    cfg = write_tiny_config(
        tmp,
        num_train=4,
        num_val=2,
        epochs=2,
        extra=f"""
custom_imports = dict(imports=['dist_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='DistProbeHook', out_dir='{probe_dir}')]
model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))
find_unused_parameters = True
env_cfg = dict(dist_cfg=dict(backend='nccl'))  # mmdetection's default, impossible on CPU
default_hooks = dict(curves=None, visualization=None)
auto_scale_lr = dict(base_batch_size=16)
val_evaluator = dict(outfile_prefix='{tmp}/val/results')
""",
    )
    work_dir = tmp / 'work'
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
    )
    proc = subprocess.run(
        ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(cfg), str(WORLD_SIZE),
         '--work-dir', str(work_dir), '--auto-scale-lr'],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    probes = [json.loads((probe_dir / f'rank{r}.json').read_text()) for r in range(WORLD_SIZE)]
    return dict(tmp=tmp, cfg=cfg, work_dir=work_dir, output=output, probes=probes)


def _check_process_group(dist_run: dict) -> None:
    for rank, probe in enumerate(dist_run['probes']):
        assert probe['rank'] == rank and probe['world_size'] == WORLD_SIZE
        assert probe['backend'] == 'gloo'
        assert probe['wrapper'] == 'MMDistributedDataParallel'
        assert probe['find_unused_parameters'] is True
    assert "backend='nccl' needs CUDA, which this host lacks: using gloo" in dist_run['output']


def _check_sync_bn_fallback(dist_run: dict) -> None:
    for probe in dist_run['probes']:
        assert probe['sync_bn'] == 0 and probe['bn'] > 0
    assert 'SyncBN needs CUDA' in dist_run['output']


def _check_auto_scale_lr(dist_run: dict) -> None:
    expected = BASE_LR * WORLD_SIZE * BATCH_SIZE / 16
    for probe in dist_run['probes']:
        assert probe['lr'] == pytest.approx(expected)
    assert 'Scaling the original LR by 0.25' in dist_run['output']


def _check_disjoint_shards(dist_run: dict) -> None:
    rank0, rank1 = (p['img_ids'] for p in dist_run['probes'])
    assert set(rank0) == set(rank1) == {'1', '2'}
    for epoch in ('1', '2'):
        assert len(rank0[epoch]) == len(rank1[epoch]) == 2
        assert not set(rank0[epoch]) & set(rank1[epoch])
        assert len(set(rank0[epoch]) | set(rank1[epoch])) == 4
    assert rank0['1'] != rank0['2'] or rank1['1'] != rank1['2']  # reshuffled per epoch


def _check_rank_zero_writes(dist_run: dict) -> None:
    work_dir = dist_run['work_dir']
    assert (work_dir / 'epoch_1.pth').is_file() and (work_dir / 'epoch_2.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')
    logs = list(work_dir.glob('**/*.log'))
    assert len(logs) == 1 and 'rank' not in logs[0].name
    assert len(list(work_dir.glob('*/vis_data/scalars.json'))) == 1
    assert not [p for p in work_dir.rglob('*') if 'rank1' in p.name or '.tmp.' in p.name]


def _detections(path: Path) -> list[tuple]:
    return sorted(
        (r['image_id'], r['category_id'], round(r['score'], 3), *(round(v, 1) for v in r['bbox']))
        for r in json.loads(path.read_text())
    )


def _check_gathered_validation(dist_run: dict, tmp_path: Path) -> None:
    work_dir = dist_run['work_dir']
    rows = [json.loads(line) for line in next(work_dir.glob('*/vis_data/scalars.json')).open()]
    val_metrics = [r for r in rows if 'coco/bbox_mAP' in r][-1]
    test_main = runpy.run_path(str(ROOT / 'tools' / 'test.py'))['main']
    metrics = test_main([
        str(dist_run['cfg']), str(work_dir / 'epoch_2.pth'), '--work-dir', str(tmp_path),
        '--cfg-options', f'test_evaluator.outfile_prefix={tmp_path}/results',
    ])  # fmt: skip
    # identical detections need identical BatchNorm statistics on both ranks (the SyncBN fallback
    # keeps them per process; SyncBuffersHook averages them before validation and saving)
    gathered = _detections(dist_run['tmp'] / 'val' / 'results.bbox.json')
    single = _detections(tmp_path / 'results.bbox.json')
    assert {d[0] for d in gathered} == {d[0] for d in single} and len({d[0] for d in single}) == 2
    assert gathered == single
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert val_metrics[key] == pytest.approx(metrics[key], abs=1e-4), key


def test_two_cpu_processes_train_and_validate_together(tmp_path: Path) -> None:
    # One test, not a module fixture: pytest -n 2 would run a shared fixture once per worker.
    dist_run = _train_two_processes(tmp_path / 'dist')
    _check_process_group(dist_run)
    _check_sync_bn_fallback(dist_run)
    _check_auto_scale_lr(dist_run)
    _check_disjoint_shards(dist_run)
    _check_rank_zero_writes(dist_run)
    _check_gathered_validation(dist_run, tmp_path / 'single')


def _recorder(tmp_path: Path, name: str) -> Path:
    """An executable that writes its arguments, one per line, to ``<name>.args``."""
    path = tmp_path / name
    path.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{tmp_path}/{name}.args"\n')
    path.chmod(0o755)
    return path


def _run_script(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ['bash', str(ROOT / 'tools' / script), *args],
        env=dict(os.environ, **env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_dist_test_script_runs_test_py_under_torchrun_on_several_nodes(tmp_path: Path) -> None:
    python = _recorder(tmp_path, 'python')
    proc = _run_script(
        'dist_test.sh', 'cfg.py', 'model.pth', '4', '--eval', 'bbox',
        PYTHON=str(python), NNODES='2', NODE_RANK='1', MASTER_ADDR='10.0.0.1', PORT='1234',
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'python.args').read_text().split('\n')[:-1] == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
        '--master_addr=10.0.0.1', '--master_port=1234', '--nproc_per_node=4',
        str(ROOT / 'tools' / 'test.py'), 'cfg.py', 'model.pth', '--launcher', 'pytorch',
        '--eval', 'bbox',
    ]  # fmt: skip


@pytest.mark.parametrize(
    ('script', 'fourth', 'tool', 'tail'),
    [
        ('slurm_train.sh', 'work', 'train.py', ['--work-dir=work', '--launcher=slurm', '--amp']),
        ('slurm_test.sh', 'model.pth', 'test.py', ['model.pth', '--launcher=slurm', '--amp']),
    ],
)
def test_slurm_scripts_start_one_task_per_gpu(tmp_path, script, fourth, tool, tail) -> None:
    _recorder(tmp_path, 'srun')
    proc = _run_script(
        script, 'gpu_part', 'job1', 'cfg.py', fourth, '--amp',
        PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='16', GPUS_PER_NODE='8',
        CPUS_PER_TASK='4', SRUN_ARGS='--quotatype=auto --time=60', PYTHON='python3',
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'srun.args').read_text().split('\n')[:-1] == [
        '-p', 'gpu_part', '--job-name=job1', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=60', 'python3', '-u', str(ROOT / 'tools' / tool), 'cfg.py',
        *tail,
    ]  # fmt: skip


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh', 'slurm_train.sh'])
def test_launch_scripts_explain_missing_arguments(script: str) -> None:
    proc = _run_script(script, 'cfg.py')
    assert proc.returncode == 2 and 'usage:' in proc.stderr
