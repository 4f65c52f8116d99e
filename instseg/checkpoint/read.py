"""Loading checkpoints safely on torch >= 2.6.

torch >= 2.6 unpickles with ``weights_only=True`` by default, which rejects the objects that
mmengine 0.10.7 writes into a checkpoint (its ``HistoryBuffer`` log records hold numpy arrays),
so ``--resume`` fails as shipped. Rather than turn safe loading off, instseg keeps
``weights_only=True`` and allows exactly the extra types that instseg's own checkpoints contain.
A file that needs any other pickled object is refused with a message; users who trust such a
file opt in with the environment variable ``INSTSEG_TRUST_CHECKPOINTS=1`` (or the tools'
``--trust-checkpoint``).
"""

from __future__ import annotations

import os
import os.path as osp
import pickle
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


# Local paths (the scheme with an empty prefix) go through the safe loader everywhere mmengine
# loads a checkpoint: ``load_from``, ``--resume``, ``init_cfg=dict(type='Pretrained', ...)``.
CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
