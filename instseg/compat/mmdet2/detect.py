"""Telling a 2.x-style config from a native one, after ``_base_`` merging."""

from __future__ import annotations

from typing import Any

from .pipeline import is_2x_step

# Top-level keys that exist only in mmdetection 2.x configs.
SETTINGS_2X = (
    'optimizer',
    'optimizer_config',
    'lr_config',
    'momentum_config',
    'runner',
    'total_epochs',
    'img_norm_cfg',
    'evaluation',
    'checkpoint_config',
    'log_config',
    'resume_from',
    'workflow',
    'dist_params',
    'fp16',
)
_DATA_KEYS = ('samples_per_gpu', 'workers_per_gpu', 'train', 'val', 'test')


def is_model_cfg(value: Any) -> bool:
    """A 2.x-era top-level train_cfg/test_cfg: rpn/rcnn settings rather than a loop."""
    return isinstance(value, dict) and any(k in value for k in ('rpn', 'rpn_proposal', 'rcnn'))


def find_2x_markers(cfg: dict) -> list[str]:
    """Why ``cfg`` (a merged config as a dict) reads as 2.x; empty for a native config."""
    found = [f'{key}=' for key in SETTINGS_2X if key in cfg]
    data = cfg.get('data')
    if isinstance(data, dict) and any(k in data for k in _DATA_KEYS):
        found.append('data=dict(samples_per_gpu/train/val/test)')
    for key in ('train_cfg', 'test_cfg'):
        if is_model_cfg(cfg.get(key)):
            found.append(f'top-level {key} with rpn/rcnn settings')
    model = cfg.get('model')
    if isinstance(model, dict):
        backbone = model.get('backbone') or {}
        if 'pretrained' in model:
            found.append('model.pretrained')
        if isinstance(backbone, dict) and (
            'use_checkpoint' in backbone or 'pretrained' in backbone
        ):
            found.append('model.backbone.use_checkpoint/pretrained')
    steps = sorted({step.get('type') for step in _steps(cfg) if is_2x_step(step)})
    if steps:
        found.append(f'2.x pipeline steps {steps}')
    return found


def _steps(node: Any):
    """Every dict with a ``type`` anywhere in ``node`` (pipelines nest inside datasets)."""
    if isinstance(node, dict):
        if 'type' in node:
            yield node
        for value in node.values():
            yield from _steps(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _steps(value)
