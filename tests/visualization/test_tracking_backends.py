"""Weights & Biases and MLflow as vis_backends: a tiny training run logs to both, offline, and
the test reads back what arrived (losses, lr, COCO metrics, the config, drawn predictions)."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests' / 'tools'))
from tool_helpers import load_module, load_tool  # noqa: E402

if os.environ.get('CI'):  # [dev] installs both: CI fails rather than skips without them
    import mlflow
    import wandb  # noqa: F401
else:
    wandb = pytest.importorskip('wandb', reason='pip install -e ".[wandb]" (part of [dev])')
    mlflow = pytest.importorskip('mlflow', reason='pip install -e ".[mlflow]" (part of [dev])')

TRACKING_EXTRA = """
visualizer = dict(vis_backends=[
    dict(type='LocalVisBackend'),
    dict(type='WandbVisBackend', init_kwargs=dict(project='instseg-test', mode='offline',
                                                  dir='{wandb_dir}')),
    dict(type='MLflowVisBackend', exp_name='instseg-test', tracking_uri='{mlflow_uri}',
         artifact_location='{artifacts}'),
])
default_hooks = dict(visualization=dict(draw=True, interval=1))
"""


@pytest.fixture(scope='module')
def tracked_run(tmp_path_factory) -> dict:
    """A 2-epoch tiny run that logs to an offline W&B run and a local MLflow store (SQLite file)."""
    tmp = tmp_path_factory.mktemp('tracking')
    mp = pytest.MonkeyPatch()
    mp.setenv('WANDB_MODE', 'offline')
    mp.setenv('WANDB_SILENT', 'true')
    mp.setenv('WANDB_DISABLE_GIT', 'true')
    mlflow_uri = f'sqlite:///{tmp / "mlflow.db"}'  # MLflow 3 refuses new file stores
    extra = TRACKING_EXTRA.format(
        wandb_dir=tmp / 'wandb_root', mlflow_uri=mlflow_uri, artifacts=tmp / 'mlflow_artifacts'
    )
    tiny = load_module(ROOT / 'tests' / 'e2e' / 'tiny.py', 'tracking_tiny')
    cfg = tiny.write_tiny_config(tmp, num_train=4, num_val=2, epochs=2, extra=extra)
    try:
        load_tool('train.py').main(
            [str(cfg), '--work-dir', str(tmp / 'work'),
             '--cfg-options', 'experiment_name=tracking_train']
        )  # fmt: skip
    finally:
        mp.undo()
    (scalars,) = (tmp / 'work').glob('*/vis_data/scalars.json')
    local = [json.loads(line) for line in scalars.read_text().splitlines()]
    return dict(tmp=tmp, mlflow_uri=mlflow_uri, local=local)


def _wandb_records(path: Path) -> list:
    """The protobuf records of an offline ``run-*.wandb`` file (a LevelDB-style log: a 7-byte
    file header, then 32 KiB blocks of records, each with a 7-byte header, split into
    FIRST/MIDDLE/LAST pieces where they cross a block)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos = path.read_bytes(), 32768, 7
    assert data[:4] == b':W&B', f'{path} is not a W&B run file'
    records, pieces = [], b''
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block padding
            pos += left
            continue
        _, length, kind = struct.unpack('<IHB', data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        pieces += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b''
    return records


def test_wandb_offline_run_holds_losses_lr_metrics_config_and_overlays(tracked_run) -> None:
    (run_file,) = (tracked_run['tmp'] / 'wandb_root').glob('wandb/offline-run-*/run-*.wandb')
    records = _wandb_records(run_file)
    history = [
        {item.key or '/'.join(item.nested_key): json.loads(item.value_json)
         for item in r.history.item}
        for r in records if r.WhichOneof('record_type') == 'history'
    ]  # fmt: skip
    logged = {key: [row[key] for row in history if key in row] for row in history for key in row}
    local_losses = [row['loss'] for row in tracked_run['local'] if 'loss' in row]
    assert logged['loss'] == pytest.approx(local_losses) and len(local_losses) == 4
    assert all(lr > 0 for lr in logged['lr']) and 'loss_mask' in logged
    local_map = [row['coco/segm_mAP'] for row in tracked_run['local'] if 'coco/segm_mAP' in row]
    assert logged['coco/segm_mAP'] == pytest.approx(local_map) and len(local_map) == 2
    assert 'coco/bbox_mAP' in logged
    assert any(key.startswith('val_img') for key in logged)  # the drawn predictions...
    drawn = sorted(run_file.parent.glob('files/media/images/val_img_*.png'))  # ...as files
    assert len(drawn) == 2 and all(cv2.imread(str(p)).shape == (96, 96, 3) for p in drawn)
    config = {
        u.key: json.loads(u.value_json)
        for r in records
        if r.WhichOneof('record_type') in ('run', 'config')
        for u in (r.run.config.update if r.WhichOneof('record_type') == 'run' else r.config.update)
    }
    assert config['model']['type'] == 'MaskRCNN' and config['train_cfg']['max_epochs'] == 2


def test_mlflow_file_store_holds_losses_lr_metrics_config_and_overlays(tracked_run) -> None:
    client = mlflow.tracking.MlflowClient(tracking_uri=tracked_run['mlflow_uri'])
    (experiment,) = [e for e in client.search_experiments() if e.name == 'instseg-test']
    (run,) = client.search_runs([experiment.experiment_id])
    losses = [m.value for m in client.get_metric_history(run.info.run_id, 'loss')]
    local_losses = [row['loss'] for row in tracked_run['local'] if 'loss' in row]
    assert losses == pytest.approx(local_losses)
    assert all(m.value > 0 for m in client.get_metric_history(run.info.run_id, 'lr'))
    segm = [m.value for m in client.get_metric_history(run.info.run_id, 'coco/segm_mAP')]
    local_map = [row['coco/segm_mAP'] for row in tracked_run['local'] if 'coco/segm_mAP' in row]
    assert segm == pytest.approx(local_map)
    assert run.data.params['model.type'] == 'MaskRCNN'
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert 'config.py' in artifacts and 'images' in artifacts
    drawn = [a.path for a in client.list_artifacts(run.info.run_id, 'images')]
    # one overlay per validation epoch, none overwritten
    assert len(drawn) == 2 and all(p.startswith('images/val_img_') for p in drawn), drawn
