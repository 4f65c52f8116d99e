"""RPN anchor assignment on a crowded image: chunked MaxIoUAssigner next to the whole IoU matrix.

The anchors are those of the R50-FPN RPN (3 shapes, strides 4-64) on a --size square image; the
ground truths are --instances random boxes of 6-26 px (nuclei-sized). Each method runs in a
fresh process; peak memory is measured as benchmarks/common.py's PeakMemory describes. The
benchmark checks that both methods give identical assignments.

examples:
  python tools/analysis_tools/benchmark.py assigner --size 1024 --instances 1862   # the README's
  python tools/analysis_tools/benchmark.py assigner --size 128 --instances 50      # a quick check
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .common import (
    PeakMemory,
    add_worker_argument,
    device_label,
    format_table,
    resolve_device,
    spawn_worker,
    worker_task,
)

METHODS = ('chunked', 'whole')
RPN_ASSIGNER = dict(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, ignore_iof_thr=-1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument('--size', type=int, default=1024, help='image height and width (px)')
    parser.add_argument('--instances', type=int, default=1862, help='ground-truth boxes')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (CPU)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto'")
    parser.add_argument('--skip-whole', action='store_true', help='time the chunked method only')
    add_worker_argument(parser)


def make_inputs(size: int, num_instances: int, device: str, seed: int = 0):
    """RPN anchors of a ``size`` x ``size`` image and ``num_instances`` random gt boxes."""
    import torch

    from instseg.models.task_modules import AnchorGenerator

    generator = AnchorGenerator(strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8])
    sizes = [(-(-size // s), -(-size // s)) for s in (4, 8, 16, 32, 64)]
    anchors = torch.cat(generator.grid_priors(sizes, device=device))
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_instances, 2, generator=g) * (size - 26)
    gts = torch.cat([xy, xy + 6 + torch.rand(num_instances, 2, generator=g) * 20], dim=1)
    labels = torch.zeros(num_instances, dtype=torch.long)
    return anchors, gts.to(device), labels.to(device)


def run_worker(args: argparse.Namespace) -> dict:
    """One assignment (task ``METHOD:RESULT_FILE``) in this fresh process -> its figures; the
    assignment itself is saved to RESULT_FILE for the comparison."""
    import torch

    from instseg.models.task_modules import MaxIoUAssigner, bbox_overlaps

    args, task = worker_task(args)
    method, result_file = task.split(':', 1)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    anchors, gts, labels = make_inputs(args.size, args.instances, device)
    assigner = MaxIoUAssigner(**RPN_ASSIGNER)
    start = time.perf_counter()
    with PeakMemory(device) as memory:
        if method == 'chunked':
            result = assigner.assign(anchors, gts, labels)
        else:
            result = assigner.assign_wrt_overlaps(bbox_overlaps(gts, anchors), labels)
    seconds = time.perf_counter() - start
    torch.save([t.cpu() for t in (result.gt_inds, result.max_overlaps, result.labels)], result_file)
    return dict(
        method=method,
        device=device_label(device),
        anchors=len(anchors),
        instances=args.instances,
        seconds=round(seconds, 3),
        peak_mb=round(memory.mib, 1),
        positives=int((result.gt_inds > 0).sum()),
    )


def run(args: argparse.Namespace) -> dict:
    """Both methods, each in a fresh process; prints and returns their figures."""
    import torch

    methods = METHODS[:1] if args.skip_whole else METHODS
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            result_file = str(Path(tmp) / f'{method}.pt')
            rows.append(spawn_worker('assigner', args, f'{method}:{result_file}'))
            results.append(torch.load(result_file))
    report: dict = dict(size=args.size, rows=rows)
    if len(results) == 2:
        report['identical'] = all(torch.equal(a, b) for a, b in zip(*results, strict=True))
    first = rows[0]
    print(f'RPN assignment: {first["anchors"]} anchors x {first["instances"]} ground truths '
          f'({args.size}x{args.size} image), {first["device"]}')  # fmt: skip
    table = [[r['method'], r['seconds'], r['peak_mb'], r['positives']] for r in rows]
    print(format_table(['method', 'time (s)', 'peak memory (MiB)', 'positives'], table))
    if 'identical' in report:
        print('assignments identical' if report['identical'] else 'ASSIGNMENTS DIFFER')
    return report
