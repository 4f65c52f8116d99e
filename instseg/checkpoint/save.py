"""Writing checkpoints atomically and finding the one to resume from.

The Runner saves every checkpoint through :func:`save_atomically`, so a process killed mid-write
never leaves a half-written file under a checkpoint's name.
"""

from __future__ import annotations

import glob
import os
import os.path as osp
import re
import socket
from typing import Any


def _temp_name(name: str) -> str:
    # Host and pid in the name let a later run tell a dead writer's leftover from a live one.
    return f'.{name}.tmp.{socket.gethostname()}.{os.getpid()}'


def save_atomically(write: Any, path: str) -> None:
    """Call ``write(tmp_path)`` then move the finished file to ``path`` in one rename.

    The temporary file sits next to ``path`` (same file system, so the rename is atomic) and is
    flushed to disk first: a process killed mid-write leaves the previous file at ``path`` intact
    and never a half-written one under its name.
    """
    directory, name = osp.split(osp.abspath(path))
    tmp = osp.join(directory, _temp_name(name))
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def remove_stale_temp_files(directory: str) -> list[str]:
    """Delete the temporary checkpoint files in ``directory`` left by killed processes of this
    host (their pid no longer runs). Returns the removed paths."""
    host = socket.gethostname()
    removed = []
    for path in glob.glob(osp.join(glob.escape(directory), '.*.tmp.*')):
        owner_host, _, pid = osp.basename(path).rpartition('.tmp.')[2].rpartition('.')
        if owner_host != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        os.remove(path)
        removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def latest_checkpoint(work_dir: str) -> str | None:
    """The checkpoint to auto-resume from in ``work_dir``, or None when there is none.

    mmengine's ``last_checkpoint`` file names it; when that file is missing, empty, or names a
    file that is gone (a work dir copied elsewhere keeps the old absolute path), the same file
    name in ``work_dir``, else the ``epoch_N.pth`` / ``iter_N.pth`` written last, is used.
    """
    named = ''
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
    for candidate in (named, osp.join(work_dir, osp.basename(named))):
        if named and osp.isfile(candidate) and osp.getsize(candidate) > 0:
            return candidate
    if not osp.isdir(work_dir):
        return None
    found = [osp.join(work_dir, name) for name in os.listdir(work_dir) if _CKPT_NAME.match(name)]
    return max(found, key=osp.getmtime) if found else None
