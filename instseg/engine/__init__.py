"""Runner glue that mmengine lacks: safe checkpoint loading, atomic saves."""

from . import hooks, optim_constructors  # noqa: F401  (registers hooks, optim constructors)
from .amp_optim_wrapper import AmpOptimWrapper
from .checkpoint import SAFE_GLOBALS, UnsafeCheckpointError, load_checkpoint_file, save_atomically
from .runner import NonFiniteCheckpointError, Runner

__all__ = [
    'SAFE_GLOBALS',
    'AmpOptimWrapper',
    'NonFiniteCheckpointError',
    'Runner',
    'UnsafeCheckpointError',
    'load_checkpoint_file',
    'save_atomically',
]
