"""Detectors under the same training budget: time per training iteration and final mAP.

By default the demo Mask R-CNN against its Cascade Mask R-CNN twin (same data, backbone, RPN and
schedule), each trained from scratch for --epochs epochs on the generated demo data and then
evaluated once on its validation set.

example:
  python tools/analysis_tools/benchmark.py cascade --epochs 1 [--configs A.py B.py]

prints, per config, the mean and median time of a training iteration (model forward, backward
and optimizer step; data loading excluded) after --warmup untimed iterations, and the bbox and
segm mAP on the validation set after --epochs epochs. Both models get the same data order and
learning-rate schedule. Run on an otherwise idle machine: other load inflates the times.
"""

from __future__ import annotations

import argparse
import os.path as osp
import statistics
import time

import torch
from mmengine.config import DictAction
from mmengine.hooks import Hook

from instseg.engine import Runner
from instseg.engine.config import load_config

from .common import device_label, format_table, sync

DEFAULT_CONFIGS = (
    'configs/demo/mask_rcnn_r18_fpn_demo.py',
    'configs/demo/cascade_mask_rcnn_r18_fpn_demo.py',
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument(
        '--configs', nargs='+', default=list(DEFAULT_CONFIGS), help='configs to compare'
    )
    parser.add_argument('--epochs', type=int, default=1, help='training epochs per config')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument(
        '--work-dir', default='work_dirs/benchmark_cascade', help='one sub-folder per config'
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override keys of every config'
    )


class _TrainStepTimer(Hook):
    """Records the wall time of every training step (runs before and after all other hooks)."""

    priority = 'VERY_HIGH'

    def __init__(self, device: str) -> None:
        self.device = device
        self.times: list[float] = []
        self._start = 0.0

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        sync(self.device)
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        sync(self.device)
        self.times.append(time.perf_counter() - self._start)


def run_one(config: str, args: argparse.Namespace) -> dict:
    """Train ``config`` for ``args.epochs`` epochs, then evaluate; returns its figures."""
    name = osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, args.cfg_options, osp.join(args.work_dir, name))
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_cfg.val_begin = args.epochs + 1  # evaluated once, after training
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False, save_best=None
    )
    runner = Runner.from_cfg(cfg)
    timer = _TrainStepTimer(str(next(runner.model.parameters()).device))
    runner.register_hook(timer)
    runner.train()
    metrics = runner.val_loop.run()
    timed = timer.times[args.warmup :] or timer.times
    return dict(
        name=name,
        iterations=len(timer.times),
        ms_mean=1000 * statistics.fmean(timed),
        ms_median=1000 * statistics.median(timed),
        bbox_mAP=metrics.get('coco/bbox_mAP', float('nan')),
        segm_mAP=metrics.get('coco/segm_mAP', float('nan')),
    )


def run(args: argparse.Namespace) -> dict:
    """Train and evaluate every config in turn; prints and returns their figures."""
    if args.epochs < 1 or args.warmup < 0:
        raise SystemExit('--epochs must be >= 1 and --warmup >= 0')
    rows = [run_one(config, args) for config in args.configs]
    device = device_label('cuda' if torch.cuda.is_available() else 'cpu')
    print(f'\ndevice: {device}; {args.epochs} epoch(s) each, {args.warmup} iterations untimed')
    print(format_table(
        ['config', 'iters', 'ms/iter mean', 'ms/iter median', 'bbox mAP', 'segm mAP'],
        [[r['name'], r['iterations'], round(r['ms_mean'], 1), round(r['ms_median'], 1),
          r['bbox_mAP'], r['segm_mAP']] for r in rows],
    ))  # fmt: skip
    for r in rows[1:]:
        ratio = r['ms_mean'] / rows[0]['ms_mean']
        print(f'{r["name"]} / {rows[0]["name"]}: {ratio:.2f}x time per iteration')
    return dict(device=device, epochs=args.epochs, rows=rows)
