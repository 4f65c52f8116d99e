"""Checkpoints: safe reading, format detection, key conversion, loading and atomic saving.

``read`` (safe unpickling, the state dict inside a file), ``allowlist`` (the pickled types
allowed), ``locate`` (URLs -> files on disk, never a download), ``detect`` (which library wrote
a state dict), ``convert/`` (torchvision, mmdetection, official Swin / ConvNeXt, timm -> instseg
keys), ``load`` (into a detector or backbone, reporting keys), ``pretrained`` (backbones'
``init_cfg``), ``save`` (atomic writes, the checkpoint to resume from).

Importing this package routes mmengine's checkpoint loading (``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained')``) through the safe reader. It may import torch, mmengine,
numpy and timm; ``instseg.models``, ``instseg.engine``, ``instseg.apis`` and the tools import
from it, never the reverse.
"""

from .load import LoadReport, load_detector_state, load_detector_weights, load_state
from .locate import MissingWeightsError, locate_weights
from .read import (
    TRUST_ENV,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    extract_state_dict,
    load_checkpoint_file,
    read_checkpoint,
    read_state_dict,
    trust_checkpoints,
)
from .save import latest_checkpoint, remove_stale_temp_files, save_atomically

__all__ = [
    'TRUST_ENV',
    'CorruptCheckpointError',
    'LoadReport',
    'MissingWeightsError',
    'UnsafeCheckpointError',
    'extract_state_dict',
    'latest_checkpoint',
    'load_checkpoint_file',
    'load_detector_state',
    'load_detector_weights',
    'load_state',
    'locate_weights',
    'read_checkpoint',
    'read_state_dict',
    'remove_stale_temp_files',
    'save_atomically',
    'trust_checkpoints',
]
