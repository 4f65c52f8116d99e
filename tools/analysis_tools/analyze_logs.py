"""Plot curves from, or time, training runs: reads mmengine's JSON scalar logs.

The logs are ``WORK_DIR/<timestamp>/vis_data/scalars.json`` (or the identical
``vis_data/<timestamp>.json``), written by every training run.
"""

from __future__ import annotations

import argparse
import os.path as osp
from collections import defaultdict

import numpy as np

from instseg.visualization.curves import load_json_log, plot_panels, series_from_log

EXAMPLES = """examples:
  # loss per iteration and segm mAP per epoch, one panel each, to a PNG (800 x 300 px per key)
  python tools/analysis_tools/analyze_logs.py plot_curve \\
      work_dirs/mask_rcnn_r18_fpn_demo/20250101_120000/vis_data/scalars.json \\
      --keys loss coco/segm_mAP --out curve.png
  # compare two runs
  python tools/analysis_tools/analyze_logs.py plot_curve run1.json run2.json --keys bbox_mAP \\
      --legend baseline swin --out compare.png
  # average iteration time, slowest and fastest epoch
  python tools/analysis_tools/analyze_logs.py cal_train_time run1.json
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Analyze training logs (mmengine JSON scalar logs).',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser(
        'plot_curve',
        help='plot logged values to a PNG',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument('json_logs', nargs='+', help='scalars.json files')
    plot.add_argument(
        '--keys',
        nargs='+',
        default=['loss'],
        help='logged keys, e.g. loss loss_mask coco/segm_mAP (a suffix such as segm_mAP works)',
    )
    plot.add_argument('--legend', nargs='+', help='one name per log (default: the file path)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--smooth', type=int, default=1, help='moving-average window for long series')
    plot.add_argument('--out', required=True, help='output PNG file')
    timing = sub.add_parser(
        'cal_train_time',
        help='average iteration time per log',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    timing.add_argument('json_logs', nargs='+', help='scalars.json files')
    timing.add_argument(
        '--include-outliers',
        action='store_true',
        help="count each epoch's first logged iteration (data loader start-up) too",
    )
    args = parser.parse_args(argv)
    if args.task == 'plot_curve' and args.legend and len(args.legend) != len(args.json_logs):
        parser.error(f'--legend needs {len(args.json_logs)} names, one per log')
    return args


def plot_curve(args: argparse.Namespace) -> str:
    """One panel per key with one line per log; returns the PNG path."""
    legends = args.legend or args.json_logs
    panels = []
    per_log = [series_from_log(path, args.keys) for path in args.json_logs]
    for key in args.keys:
        series = {}
        x_label = 'iter'
        for legend, log in zip(legends, per_log, strict=True):
            x_label, xs, ys = log[key]
            series[legend if len(per_log) > 1 else key] = (xs, ys)
        panels.append((key, x_label, series))
    out = plot_panels(panels, args.out, title=args.title, smooth_window=args.smooth)
    print(f'curves of {", ".join(args.keys)} written to {out}')
    return out


def cal_train_time(args: argparse.Namespace) -> list[dict]:
    """Print and return the mean iteration time of each log (seconds)."""
    summaries = []
    for path in args.json_logs:
        train, _ = load_json_log(path)
        by_epoch: dict[int, list[float]] = defaultdict(list)
        for row in train:
            if 'time' in row:
                by_epoch[int(row.get('epoch', 0))].append(float(row['time']))
        if not by_epoch:
            raise KeyError(f'{path} has no training "time" values to average')
        if not args.include_outliers:
            by_epoch = {e: t[1:] if len(t) > 1 else t for e, t in by_epoch.items()}
        means = {epoch: float(np.mean(times)) for epoch, times in by_epoch.items()}
        slowest = max(means, key=means.get)
        fastest = min(means, key=means.get)
        overall = float(np.mean([t for times in by_epoch.values() for t in times]))
        summary = dict(
            log=path,
            mean_iter_time=overall,
            slowest_epoch=slowest,
            slowest_time=means[slowest],
            fastest_epoch=fastest,
            fastest_time=means[fastest],
            epoch_time_std=float(np.std(list(means.values()))),
        )
        print(f'-----Analyze train time of {path}-----')
        print(f'slowest epoch {slowest}, average time is {means[slowest]:.4f} s/iter')
        print(f'fastest epoch {fastest}, average time is {means[fastest]:.4f} s/iter')
        print(f'time std over epochs is {summary["epoch_time_std"]:.4f}')
        print(f'average iter time: {overall:.4f} s/iter')
        summaries.append(summary)
    return summaries


def main(argv: list[str] | None = None):
    """Run plot_curve (returns the PNG path) or cal_train_time (returns the summaries)."""
    args = parse_args(argv)
    for path in args.json_logs:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Log file {path} does not exist')
    if args.task == 'plot_curve':
        return plot_curve(args)
    return cal_train_time(args)


if __name__ == '__main__':
    main()
