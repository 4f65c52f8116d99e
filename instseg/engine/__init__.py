"""Runner glue that mmengine lacks: safe checkpoint loading, atomic saves."""

from . import hooks  # noqa: F401  (registers the hooks)
from .checkpoint import SAFE_GLOBALS, UnsafeCheckpointError, load_checkpoint_file, save_atomically
from .runner import Runner

__all__ = [
    'SAFE_GLOBALS',
    'Runner',
    'UnsafeCheckpointError',
    'load_checkpoint_file',
    'save_atomically',
]
