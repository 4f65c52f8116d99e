"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [--eval bbox segm] [options]."""

from __future__ import annotations

import argparse
import os

from mmengine.config import DictAction

from instseg.engine import Runner
from instseg.engine.checkpoint import TRUST_ENV
from instseg.engine.config import load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint.',
        epilog='example: python tools/test.py configs/demo/mask_rcnn_r18_fpn_demo.py '
        'work_dirs/mask_rcnn_r18_fpn_demo/epoch_12.pth --eval bbox segm',
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--eval',
        nargs='+',
        choices=['bbox', 'segm', 'proposal'],
        help='metrics to compute (default: those of test_evaluator)',
    )
    parser.add_argument('--work-dir', help='where the test log goes')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load a checkpoint that contains arbitrary pickled objects',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. test_evaluator.classwise=True',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if args.eval:
        evaluators = (
            cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        )
        for evaluator in evaluators:
            evaluator.metric = list(args.eval)
    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
