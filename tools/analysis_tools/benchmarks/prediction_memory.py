"""Peak memory and time of ``tools/test.py``-style prediction with compact and dense masks.

Each setting runs the config's test loop (test dataloader, model, ``CocoMetric``) in a fresh
subprocess, which reports its peak resident set (``ru_maxrss``), how far the peak rose during
the test loop, the loop's wall time, the detections per image and the COCO metrics. Without
``--checkpoint`` the model keeps its random initial weights, and ``score_thr=0`` makes it keep
``max_per_img`` detections on every image, as a crowded prediction would.

Example (the figures in the README; nuclei val: 4 images of 1000x1000, 1,000 detections each):
    python tools/analysis_tools/benchmarks/prediction_memory.py \\
        --data-root ../shared/data/nuclei/ --json work_dirs/prediction_memory.json
A quick check that the script works:
    python tools/analysis_tools/benchmarks/prediction_memory.py \\
        --data-root ../shared/data/nuclei/ --images 1 --detections 50 --formats compact
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = REPO / 'configs/nuclei/mask_rcnn_r18_fpn_tiles.py'
FORMATS = ('tensor', 'compact')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options."""
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='model and data config')
    parser.add_argument('--checkpoint', help='weights to test (default: random initial weights)')
    parser.add_argument('--data-root', help="the test set's data_root (default: the config's)")
    parser.add_argument('--images', type=int, default=4, help='test images (the first N)')
    parser.add_argument('--detections', type=int, default=1000, help='max_per_img, score_thr 0')
    parser.add_argument(
        '--formats', nargs='+', choices=FORMATS, default=list(FORMATS), help='mask formats'
    )
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    parser.add_argument('--worker', help=argparse.SUPPRESS)


def _cfg_options(args: argparse.Namespace, mask_format: str) -> dict:
    options = {
        'model.test_cfg.rcnn.mask_format': mask_format,
        'model.test_cfg.rcnn.max_per_img': args.detections,
        'test_dataloader.dataset.indices': args.images,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
    }
    if args.checkpoint is None:
        options['model.test_cfg.rcnn.score_thr'] = 0.0
    if args.data_root:
        root = args.data_root.rstrip('/') + '/'
        options['test_dataloader.dataset.data_root'] = root
        options['test_evaluator.ann_file'] = root + 'annotations/instances_val.json'
    return options


def measure(args: argparse.Namespace, setting: str) -> dict:
    """Run the test loop once in this process (the subprocess side)."""
    import torch
    from mmengine.evaluator import BaseMetric

    from instseg.engine import Runner
    from instseg.engine.config import load_config

    torch.set_num_threads(args.threads)
    mask_format = setting
    cfg = load_config(args.config, _cfg_options(args, mask_format), 'work_dirs/prediction_memory')
    cfg.load_from = args.checkpoint
    cfg.default_hooks.pop('visualization', None)
    runner = Runner.from_cfg(cfg)
    counts: list[int] = []
    metric = runner.test_evaluator.metrics[0]
    process = metric.process

    def counting(data_batch, data_samples) -> None:
        counts.extend(len(s['pred_instances']['bboxes']) for s in data_samples)
        process(data_batch, data_samples)

    assert isinstance(metric, BaseMetric)
    metric.process = counting
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    start = time.perf_counter()
    metrics = runner.test()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        setting=setting,
        peak_rss_mb=round(peak, 1),
        rise_mb=round(peak - before, 1),
        seconds=round(seconds, 2),
        detections=counts,
        segm_mAP=metrics.get('coco/segm_mAP'),
        bbox_mAP=metrics.get('coco/bbox_mAP'),
    )


def run(args: argparse.Namespace) -> dict:
    """Measure every setting in its own subprocess; print a table, return the figures."""
    if args.worker:
        return measure(args, args.worker)
    settings = list(args.formats)
    forwarded = ['--config', args.config, '--images', str(args.images), '--detections',
                 str(args.detections), '--threads', str(args.threads)]  # fmt: skip
    for flag, value in (('--checkpoint', args.checkpoint), ('--data-root', args.data_root)):
        if value is not None:
            forwarded += [flag, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    rows = []
    for setting in settings:
        proc = subprocess.run(
            [sys.executable, __file__, *forwarded, '--worker', setting],
            capture_output=True,
            text=True,
            env=env,
            cwd=os.getcwd(),
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f'{setting} failed:\n{proc.stderr[-3000:]}')
        rows.append(json.loads(lines[-1]))
    print(f'{"masks":<16}{"peak RSS MB":>12}{"rise MB":>10}{"seconds":>9}{"dets/img":>10}'
          f'{"segm mAP":>10}')  # fmt: skip
    for row in rows:
        dets = sum(row['detections']) / max(len(row['detections']), 1)
        print(
            f'{row["setting"]:<16}{row["peak_rss_mb"]:>12.0f}{row["rise_mb"]:>10.0f}'
            f'{row["seconds"]:>9.1f}{dets:>10.0f}{row["segm_mAP"]!s:>10}'
        )
    result = dict(threads=args.threads, images=args.images, rows=rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2],
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args)
    if args.worker:
        print(json.dumps(result))
    return result


if __name__ == '__main__':
    sys.path.insert(0, str(REPO))
    main()
