"""Config loading shared by the command-line tools."""

from __future__ import annotations

import logging
import os.path as osp

from mmengine.config import Config
from mmengine.logging import print_log

from instseg.compat.mmdet2 import find_2x_markers, translate_2x
from instseg.compat.mmdet2.options import check_options_land, split_options
from instseg.compat.mmdet3 import resolve_3x


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """Read a config file, apply ``--cfg-options`` and settle the work dir.

    A config written for mmdetection 3.x (``default_scope='mmdet'``, ``mmpretrain.`` types,
    ``custom_imports`` of mmdet / mmpretrain) is pointed at instseg's registries. A config in
    mmdetection 2.x's dialect (found after ``_base_`` merging) is translated into instseg's
    keys, and the translation logged. On a 2.x config, ``cfg_options`` with 2.x keys
    (``optimizer.lr``, ``data.samples_per_gpu``, ``model.pretrained``, ...) are merged before
    the translation, and one that changes nothing in it is an error; native keys apply after
    it. The work dir is, in order: ``work_dir``, the config's own ``work_dir``, or
    ``work_dirs/<config file name without .py>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path} does not exist')
    cfg = resolve_3x(Config.fromfile(path, import_custom_modules=False), path)
    if cfg_options and find_2x_markers(cfg.to_dict()):
        before, cfg_options = split_options(cfg_options)
        if before:
            check_options_land(cfg, before, path)
            cfg.merge_from_dict(before)
    cfg = translate_if_2x(cfg, path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def translate_if_2x(cfg: Config, path: str) -> Config:
    """``cfg`` itself when native; else its translation, with each translated setting logged."""
    markers = find_2x_markers(cfg.to_dict())
    if not markers:
        return cfg
    translated, notes = translate_2x(cfg, source=path)
    print_log(
        f'{path} is an mmdetection 2.x config ({"; ".join(markers)}); translated to instseg keys '
        '(tools/misc/upgrade_config.py writes the result as a file):',
        logger='current',
    )
    for note in notes:
        level = logging.WARNING if note.startswith('WARNING') else logging.INFO
        print_log(f'  {note}', logger='current', level=level)
    return translated


def enable_amp(cfg: Config, dtype: str | None = None) -> None:
    """Switch ``optim_wrapper`` to mmengine's AmpOptimWrapper with a dynamic loss scale."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return
    wrapper.type = 'AmpOptimWrapper'
    wrapper.setdefault('loss_scale', 'dynamic')
    if dtype is not None:
        wrapper.dtype = dtype
