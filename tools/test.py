"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [--eval bbox segm] [options]."""

from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.model import BaseTTAModel, is_model_wrapper

from instseg.apis.inference import check_checkpoint_fits
from instseg.checkpoint import TRUST_ENV, load_checkpoint_file, locate_weights
from instseg.checkpoint.load import convert_for_model
from instseg.engine import Runner
from instseg.engine.config import load_config

EXAMPLES = """examples:
  # COCO box and mask AP, with a per-class table
  python tools/test.py configs/demo/mask_rcnn_r18_fpn_demo.py \\
      work_dirs/mask_rcnn_r18_fpn_demo/epoch_10.pth --eval bbox segm \\
      --cfg-options test_evaluator.classwise=True
  # predictions to a pickle and overlays to PNG files
  python tools/test.py CONFIG CHECKPOINT --out results.pkl --show-dir overlays
  # COCO result JSON (RLE masks) for a leaderboard, without evaluating
  python tools/test.py CONFIG CHECKPOINT --format-only \\
      --cfg-options test_evaluator.outfile_prefix=work_dirs/submission/results
  # test-time augmentation (the config needs tta_model and tta_pipeline)
  python tools/test.py CONFIG CHECKPOINT --tta
  # sliced inference: 512 px tiles sharing 128 px, merged back into whole-image predictions
  python tools/test.py CONFIG CHECKPOINT --tile 512 --tile-overlap 128
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--eval',
        nargs='+',
        choices=['bbox', 'segm', 'proposal'],
        help='metrics to compute (default: those of test_evaluator)',
    )
    parser.add_argument(
        '--out', help='dump the predictions of every image to this .pkl file (numpy, RLE masks)'
    )
    parser.add_argument(
        '--format-only',
        action='store_true',
        help='only write COCO result JSON files (needs --cfg-options '
        'test_evaluator.outfile_prefix=PATH), e.g. for a test-dev submission',
    )
    parser.add_argument(
        '--show-dir',
        help='write overlays of predicted masks, boxes, labels and scores as PNG here (relative '
        'paths are under WORK_DIR/<timestamp>/)',
    )
    parser.add_argument(
        '--score-thr', type=float, help='with --show-dir: draw predictions above this (0.3)'
    )
    parser.add_argument(
        '--tta', action='store_true', help="test-time augmentation with the config's tta_model"
    )
    parser.add_argument(
        '--force', action='store_true', help='overwrite the --out file if it exists'
    )
    parser.add_argument(
        '--tile',
        type=int,
        help='sliced inference: predict each image tile by tile with tiles of this size (px) and '
        'merge the tiles (for images larger than the model should see at once)',
    )
    parser.add_argument(
        '--tile-overlap', type=int, default=128, help='with --tile: pixels neighbouring tiles share'
    )
    parser.add_argument(
        '--tile-batch-size', type=int, default=4, help='with --tile: tiles per forward pass'
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


def _evaluators(cfg: Config) -> list:
    evaluator = cfg.test_evaluator
    return list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]


def enable_tta(cfg: Config) -> None:
    """Wrap ``cfg.model`` in ``cfg.tta_model`` and test with ``cfg.tta_pipeline`` (as mmdet)."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise KeyError(
            f'--tta needs {" and ".join(missing)} in {cfg.filename}; add them, e.g. by inheriting '
            "'../_base_/tta.py' (tta_model=dict(type='DetTTAModel', ...), tta_pipeline=[..., "
            "dict(type='TestTimeAug', transforms=[...])])"
        )
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    dataset.pipeline = cfg.tta_pipeline


def enable_tiling(cfg: Config, size: int, overlap: int, batch_size: int) -> None:
    """Wrap ``cfg.model`` in a ``TiledInferenceModel``: each test image is read tile by tile by
    the wrapper, so the dataloader only hands over its path and id."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    cfg.model = ConfigDict(
        type='TiledInferenceModel',
        module=cfg.model,
        test_pipeline=list(dataset.pipeline),
        tile_size=size,
        overlap=overlap,
        batch_size=batch_size,
    )
    dataset.pipeline = [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path'))]


def configure(cfg: Config, args: argparse.Namespace) -> None:
    """Apply the command-line switches to the config."""
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if args.eval:
        for evaluator in _evaluators(cfg):
            if evaluator.get('type', 'CocoMetric') == 'CocoMetric':
                evaluator.metric = list(args.eval)
    if args.format_only:
        for evaluator in _evaluators(cfg):
            if evaluator.get('outfile_prefix') is None:
                raise ValueError(
                    '--format-only writes result files, so it needs their path prefix: '
                    '--cfg-options test_evaluator.outfile_prefix=work_dirs/results/coco'
                )
            evaluator.format_only = True
    if args.show_dir:
        hook = cfg.default_hooks.get('visualization') or dict(type='DetVisualizationHook')
        hook.update(draw=True, test_out_dir=args.show_dir)
        if args.score_thr is not None:
            hook.score_thr = args.score_thr
        cfg.default_hooks.visualization = hook
    if args.tta and args.tile:
        raise ValueError('--tta and --tile cannot be combined')
    if args.tta:
        enable_tta(cfg)
    if args.tile:
        enable_tiling(cfg, args.tile, args.tile_overlap, args.tile_batch_size)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must name a .pkl file, got {args.out}')
        if osp.exists(args.out) and not args.force:
            raise FileExistsError(f'--out {args.out} exists; pass --force to overwrite it')
        evaluators = _evaluators(cfg)
        evaluators.append(dict(type='DumpDetResults', out_file_path=osp.abspath(args.out)))
        cfg.test_evaluator = evaluators


def _detector(model):
    """The detector inside DDP / TTA wrappers."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def main(argv: list[str] | None = None) -> dict:
    """Test CONFIG with CHECKPOINT; returns the metrics dict (empty with --format-only)."""
    args = parse_args(argv)
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    # A URL (load_from of mmdetection's configs) names a file on disk; nothing is downloaded.
    checkpoint_file = locate_weights(args.checkpoint)
    if not osp.isfile(checkpoint_file):
        raise FileNotFoundError(f'Checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    configure(cfg, args)
    runner = Runner.from_cfg(cfg)
    # Fail with the differing weights named, rather than test a half-loaded model.
    detector = _detector(runner.model)
    loaded = load_checkpoint_file(checkpoint_file, map_location='cpu')
    state, _ = convert_for_model(detector, loaded, args.checkpoint)  # torchvision, mmdet 2.x, ...
    check_checkpoint_fits(detector, state, args.checkpoint, args.config)
    del state
    return runner.test()


if __name__ == '__main__':
    main()
