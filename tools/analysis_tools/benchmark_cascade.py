"""Compare detectors under the same training budget: time per training iteration and final mAP.

By default: the demo Mask R-CNN against its Cascade Mask R-CNN twin (same data, backbone, RPN and
schedule), each trained from scratch for --epochs epochs on the generated demo data and then
evaluated once on its validation set.
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

DEFAULT_CONFIGS = (
    'configs/demo/mask_rcnn_r18_fpn_demo.py',
    'configs/demo/cascade_mask_rcnn_r18_fpn_demo.py',
)
EXAMPLES = """example:
  python tools/analysis_tools/benchmark_cascade.py --epochs 1

prints, per config, the mean and median time of a training iteration (model forward, backward
and optimizer step; data loading excluded) after --warmup untimed iterations, and the bbox and
segm mAP on the validation set after --epochs epochs. Both models get the same data order and
learning-rate schedule. Run on an otherwise idle machine: other load inflates the times.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Training time per iteration and mAP under the same budget.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0:
        parser.error('--epochs must be >= 1 and --warmup >= 0')
    return args


class _TrainStepTimer(Hook):
    """Records the wall time of every training step (runs before and after all other hooks)."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        _sync()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        _sync()
        self.times.append(time.perf_counter() - self._start)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_one(config: str, args: argparse.Namespace) -> dict:
    """Train ``config`` for ``args.epochs`` epochs, then evaluate; returns the printed figures."""
    name = osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, args.cfg_options, osp.join(args.work_dir, name))
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_cfg.val_begin = args.epochs + 1  # evaluated once, after training
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False, save_best=None
    )
    runner = Runner.from_cfg(cfg)
    timer = _TrainStepTimer()
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


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    results = [run_one(config, args) for config in args.configs]
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f'cpu ({torch.get_num_threads()} threads)'
    )
    width = max(len(r['name']) for r in results)
    print(
        f'\ndevice: {device}; {args.epochs} epoch(s) each, first {args.warmup} iterations untimed'
    )
    print(f'{"config":<{width}}  iters  ms/iter mean  ms/iter median  bbox mAP  segm mAP')
    for r in results:
        print(
            f'{r["name"]:<{width}}  {r["iterations"]:>5}  {r["ms_mean"]:>12.1f}  '
            f'{r["ms_median"]:>14.1f}  {r["bbox_mAP"]:>8.3f}  {r["segm_mAP"]:>8.3f}'
        )
    for r in results[1:]:
        ratio = r['ms_mean'] / results[0]['ms_mean']
        print(f'{r["name"]} / {results[0]["name"]}: {ratio:.2f}x time per iteration')
    return results


if __name__ == '__main__':
    main()
