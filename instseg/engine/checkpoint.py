"""Loading checkpoints safely on torch >= 2.6, and writing them atomically.

torch >= 2.6 unpickles with ``weights_only=True`` by default, which rejects the objects that
mmengine 0.10.7 writes into a checkpoint (its ``HistoryBuffer`` log records hold numpy arrays),
so ``--resume`` fails as shipped. Rather than turn safe loading off, instseg keeps
``weights_only=True`` and allows exactly the extra types that instseg's own checkpoints contain.
A file that needs any other pickled object is refused with a message; users who trust such a
file opt in with the environment variable ``INSTSEG_TRUST_CHECKPOINTS=1`` (or the tools'
``--trust-checkpoint``).
"""

from __future__ import annotations

import glob
import os
import os.path as osp
import pickle
import re
import socket
from typing import Any

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

TRUST_ENV = 'INSTSEG_TRUST_CHECKPOINTS'


def _numpy_globals() -> list[Any]:
    """numpy objects that appear when arrays and scalars are pickled (numpy 1 and 2 names)."""
    found: list[Any] = [np.ndarray, np.dtype]
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        found += [module._reconstruct, module.scalar]
        break
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return found


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as a pickle may call it: only for HistoryBuffer's statistics methods.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would let a crafted file reach
    arbitrary attributes, so nothing else passes.
    """
    # mmengine fills ``_statistics_methods`` only when the first buffer is built, so the default
    # names are listed here; a fresh process loading a checkpoint has not built one yet.
    allowed = {'mean', 'max', 'min', 'current'} | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


SAFE_GLOBALS: list[Any] = [
    HistoryBuffer,
    (_history_buffer_getattr, 'builtins.getattr'),
    *_numpy_globals(),
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside instseg's allowlist."""


def trust_checkpoints() -> bool:
    """Whether the user opted in to arbitrary pickled objects (``INSTSEG_TRUST_CHECKPOINTS``)."""
    return os.environ.get(TRUST_ENV, '') not in ('', '0', 'false', 'False')


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` with ``weights_only=True`` plus instseg's allowlist.

    Raises FileNotFoundError naming a missing file and :class:`UnsafeCheckpointError` naming the
    file and the refused object when the checkpoint needs anything else, unless the user opted in.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename} does not exist')
    if trust_checkpoints():
        return torch.load(filename, map_location=map_location, weights_only=False)
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(
                f'Refusing to load {filename}: it contains pickled objects that are neither '
                f'weights nor types instseg writes ({_refused(filename, err)}), and loading them '
                f'could run arbitrary code. If you trust this file, set {TRUST_ENV}=1 or pass '
                '--trust-checkpoint to the tool.'
            ) from None


def _refused(filename: str, err: Exception) -> str:
    """Names of the globals in ``filename`` that the allowlist refuses, for the error message."""
    try:
        allowed = {
            g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
            for g in SAFE_GLOBALS
        }
        names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        names = [n for n in names if n not in allowed]
    except Exception:  # an unreadable file: fall back to torch's own words
        names = []
    return ', '.join(names) if names else str(err).strip().splitlines()[-1]


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


# Local paths (the scheme with an empty prefix) go through the safe loader everywhere mmengine
# loads a checkpoint: ``load_from``, ``--resume``, ``init_cfg=dict(type='Pretrained', ...)``.
CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
