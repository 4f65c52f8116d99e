"""The pickled objects a checkpoint may hold besides weights, for ``torch.load(weights_only=True)``.

mmengine's Runner (and so instseg's and mmdetection 3.x's) writes its ``message_hub`` into every
checkpoint: ``HistoryBuffer`` log records whose numpy arrays pickle as ``numpy.ndarray``,
``numpy.dtype`` and ``_reconstruct``, and whose statistics methods pickle as
``getattr(HistoryBuffer, 'mean')``. Files written with numpy 1.x name those numpy functions under
``numpy.core``, files written with numpy 2 under ``numpy._core``: both names are accepted, mapped to
the installed numpy. ``meta`` (``dataset_meta``, ``experiment_name``, ...), ``optimizer`` and
``param_schedulers`` hold only builtins, tensors and ``collections.Counter``, which torch itself
allows. Nothing else is.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import numpy as np
from mmengine.logging.history_buffer import HistoryBuffer

# The numpy functions an array or scalar pickles through, and the modules that hold them.
_NUMPY_FUNCTIONS = ('_reconstruct', 'scalar')
_NUMPY_MODULES = ('numpy._core.multiarray', 'numpy.core.multiarray')


def _numpy_globals() -> list[Any]:
    """numpy objects of pickled arrays and scalars, under the numpy 1 and the numpy 2 names."""
    found: list[Any] = [np.ndarray, np.dtype]
    module = None
    for module_name in _NUMPY_MODULES:
        try:
            module = importlib.import_module(module_name)
            break
        except ImportError:
            continue
    if module is not None:
        for function in _NUMPY_FUNCTIONS:
            found += [(getattr(module, function), f'{name}.{function}') for name in _NUMPY_MODULES]
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


def allowed_names() -> set[str]:
    """The pickle names of :data:`SAFE_GLOBALS` (``module.qualname``)."""
    return {
        g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}' for g in SAFE_GLOBALS
    }
