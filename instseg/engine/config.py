"""Config loading shared by the command-line tools."""

from __future__ import annotations

import os.path as osp

from mmengine.config import Config


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """Read a config file, apply ``--cfg-options`` and settle the work dir.

    The work dir is, in order: ``work_dir``, the config's own ``work_dir``, or
    ``work_dirs/<config file name without .py>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def enable_amp(cfg: Config, dtype: str | None = None) -> None:
    """Switch ``optim_wrapper`` to mmengine's AmpOptimWrapper with a dynamic loss scale."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return
    wrapper.type = 'AmpOptimWrapper'
    wrapper.setdefault('loss_scale', 'dynamic')
    if dtype is not None:
        wrapper.dtype = dtype
