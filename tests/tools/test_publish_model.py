"""tools/model_converters/publish_model.py: weights and metadata only, hash in the file name."""

from __future__ import annotations

import hashlib
import os
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from instseg.checkpoint import TRUST_ENV, UnsafeCheckpointError, load_checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
TOOL = runpy.run_path(str(ROOT / 'tools' / 'model_converters' / 'publish_model.py'))


def _training_checkpoint(path: Path) -> dict:
    buffer = HistoryBuffer()
    buffer.update(0.5)
    ckpt = {
        'meta': {'epoch': 12, 'iter': 3000, 'dataset_meta': {'classes': ('a', 'b')}},
        'state_dict': {
            'backbone.conv1.weight': torch.randn(4, 3, 3, 3),
            'head.bias': torch.ones(2),
        },
        'optimizer': {'state': {0: {'exp_avg': torch.zeros(4)}}, 'param_groups': [{'lr': 0.02}]},
        'param_schedulers': [{'last_epoch': 12}],
        'message_hub': {'log_scalars': {'train/loss': buffer}, 'runtime_info': {'iter': 3000}},
        'rng_states': {'torch': torch.get_rng_state(), 'numpy': np.random.get_state()},
    }
    torch.save(ckpt, path)
    return ckpt


def test_publish_keeps_weights_and_meta_and_hashes_the_name(tmp_path: Path, capsys) -> None:
    ckpt = _training_checkpoint(tmp_path / 'epoch_12.pth')
    final = Path(
        TOOL['main']([str(tmp_path / 'epoch_12.pth'), str(tmp_path / 'out' / 'model.pth')])
    )
    digest = hashlib.sha256(final.read_bytes()).hexdigest()
    assert final.parent == tmp_path / 'out' and final.name == f'model-{digest[:8]}.pth'
    assert sorted(os.listdir(final.parent)) == [final.name]  # no unhashed copy left behind
    published = load_checkpoint_file(str(final))
    assert set(published) == {'meta', 'state_dict'}
    assert published['meta'] == ckpt['meta']
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(published['state_dict'][key], value)
    assert final.stat().st_size < (tmp_path / 'epoch_12.pth').stat().st_size
    out = capsys.readouterr().out
    assert 'Dropping message_hub, optimizer, param_schedulers, rng_states' in out
    assert f'Published {final}' in out


def test_publish_can_keep_more_keys(tmp_path: Path) -> None:
    _training_checkpoint(tmp_path / 'in.pth')
    final = TOOL['publish'](str(tmp_path / 'in.pth'), str(tmp_path / 'm'), ['state_dict'])
    assert Path(final).name.startswith('m-') and final.endswith('.pth')
    assert set(load_checkpoint_file(final)) == {'state_dict'}


def test_publish_refuses_what_it_cannot_publish(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    torch.save({'weights': torch.ones(1)}, tmp_path / 'plain.pth')
    with pytest.raises(KeyError, match='no "state_dict"'):
        TOOL['publish'](str(tmp_path / 'plain.pth'), str(tmp_path / 'out.pth'))
    torch.save({'state_dict': {}, 'extra': os.system}, tmp_path / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='--trust-checkpoint'):
        TOOL['publish'](str(tmp_path / 'evil.pth'), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()
