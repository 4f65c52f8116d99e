"""Safe checkpoint loading (torch >= 2.6 weights_only) and atomic writes."""

from __future__ import annotations

import fractions
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from instseg.checkpoint import (
    TRUST_ENV,
    UnsafeCheckpointError,
    latest_checkpoint,
    load_checkpoint_file,
    remove_stale_temp_files,
    save_atomically,
)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_instseg_checkpoint_contents_load_safely(tmp_path: Path) -> None:
    buffer = HistoryBuffer()
    buffer.update(0.5)
    buffer.update(0.25)
    ckpt = {
        'meta': {'epoch': 3, 'dataset_meta': {'classes': ('a', 'b'), 'palette': [(1, 2, 3)]}},
        'state_dict': {'w': torch.ones(2)},
        'message_hub': {
            'log_scalars': {'train/loss': buffer},
            'runtime_info': {'iter': 10, 'np_scalar': np.float64(0.5), 'arr': np.arange(3)},
        },
    }
    path = tmp_path / 'epoch_3.pth'
    torch.save(ckpt, path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['meta']['epoch'] == 3
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(0.375)
    assert loaded['message_hub']['runtime_info']['arr'].tolist() == [0, 1, 2]
    # mmengine's own loading path (load_from, resume, Pretrained init) goes through it too
    assert _load_checkpoint(str(path))['meta']['epoch'] == 3


def test_history_buffer_loads_in_a_fresh_process(tmp_path: Path) -> None:
    # mmengine registers HistoryBuffer's statistics methods lazily, on the first buffer built; a
    # process that loads a checkpoint before building one must still accept them.
    buffer = HistoryBuffer()
    buffer.update(1.0)
    path = tmp_path / 'ckpt.pth'
    torch.save({'message_hub': {'log_scalars': {'loss': buffer}}}, path)
    code = (
        'import sys; from instseg.checkpoint import load_checkpoint_file; '
        "print(load_checkpoint_file(sys.argv[1])['message_hub']['log_scalars']['loss'].mean())"
    )
    env = {k: v for k, v in os.environ.items() if k != TRUST_ENV}
    proc = subprocess.run(
        [sys.executable, '-c', code, str(path)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == '1.0'


def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Exploit(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path))
    assert str(path) in str(err.value) and TRUST_ENV in str(err.value)
    assert 'system' in str(err.value)
    assert not marker.exists()


def test_trusted_checkpoint_opt_in(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / 'custom.pth'
    torch.save({'value': fractions.Fraction(1, 3)}, path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(str(path))
    monkeypatch.setenv(TRUST_ENV, '1')
    assert load_checkpoint_file(str(path))['value'] == fractions.Fraction(1, 3)


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_atomic_save_keeps_previous_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / 'latest.pth'
    torch.save({'v': 1}, path)

    def failing_write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            f.write(b'half a checkpoint')
        raise RuntimeError('killed mid-write')

    with pytest.raises(RuntimeError):
        save_atomically(failing_write, str(path))
    assert torch.load(path)['v'] == 1
    assert os.listdir(tmp_path) == ['latest.pth']  # no temp file left behind

    save_atomically(lambda tmp: torch.save({'v': 2}, tmp), str(path))
    assert torch.load(path)['v'] == 2


class _GetattrEscape:
    def __reduce__(self):
        # getattr is allowed only for HistoryBuffer's statistics methods
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_beyond_history_buffer_methods_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'escape.pth'
    torch.save({'x': _GetattrEscape()}, path)
    with pytest.raises(UnsafeCheckpointError, match='escape.pth'):
        load_checkpoint_file(str(path))


def test_temp_file_sits_next_to_the_target_until_renamed(tmp_path: Path) -> None:
    seen = []

    def write(tmp: str) -> None:
        seen.append(Path(tmp))
        torch.save({'v': 1}, tmp)

    save_atomically(write, str(tmp_path / 'epoch_1.pth'))
    (tmp,) = seen
    assert tmp.parent == tmp_path and tmp.name.startswith('.epoch_1.pth.tmp.')
    assert tmp.name.endswith(f'.{os.getpid()}') and not tmp.exists()


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f'.epoch_2.pth.tmp.{host}.{dead}'
    live = tmp_path / f'.epoch_3.pth.tmp.{host}.{os.getpid()}'
    other_host = tmp_path / f'.epoch_4.pth.tmp.elsewhere.{dead}'
    for path in (stale, live, other_host):
        path.write_bytes(b'partial')
    assert remove_stale_temp_files(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and other_host.exists()


def test_latest_checkpoint_follows_last_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(str(tmp_path)) is None
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        torch.save({}, tmp_path / name)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')


def test_latest_checkpoint_survives_a_moved_or_broken_pointer(tmp_path: Path) -> None:
    torch.save({}, tmp_path / 'epoch_1.pth')
    os.utime(tmp_path / 'epoch_1.pth', (1, 1))
    torch.save({}, tmp_path / 'epoch_2.pth')
    # a work dir copied from elsewhere: the pointer's absolute path is gone, its file name is here
    (tmp_path / 'last_checkpoint').write_text('/gone/work_dir/epoch_1.pth')
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')
    # an empty pointer (killed while writing it): the newest epoch_N / iter_N file
    (tmp_path / 'last_checkpoint').write_text('')
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').unlink()
    (tmp_path / '.epoch_3.pth.tmp.host.1').write_bytes(b'half')  # never a temp file
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
