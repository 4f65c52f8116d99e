"""Checkpoints: safe reading, format detection, key conversion, loading and atomic saving.

Importing this package routes mmengine's loading of local files (``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained')``) through :func:`load_checkpoint_file`. It may import torch,
mmengine, numpy and timm; ``instseg.models`` and ``instseg.engine`` import from it, never the
reverse.
"""

from .read import (
    SAFE_GLOBALS,
    TRUST_ENV,
    UnsafeCheckpointError,
    load_checkpoint_file,
    trust_checkpoints,
)
from .save import latest_checkpoint, remove_stale_temp_files, save_atomically

__all__ = [
    'SAFE_GLOBALS',
    'TRUST_ENV',
    'UnsafeCheckpointError',
    'latest_checkpoint',
    'load_checkpoint_file',
    'remove_stale_temp_files',
    'save_atomically',
    'trust_checkpoints',
]
