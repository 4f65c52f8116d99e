"""Time and peak memory of the RPN's anchor assignment on a crowded image: instseg's chunked
``MaxIoUAssigner`` next to the same rules applied to the whole anchor-by-ground-truth IoU matrix.

The anchors are those of the R50-FPN RPN (3 shapes, strides 4-64) on a ``--size`` square image;
the ground truths are ``--instances`` random boxes of 6-26 px (nuclei-sized). Each method runs in a
fresh subprocess. On a GPU the memory figure is ``torch.cuda.max_memory_allocated`` over what
was allocated before; on CPU it is how far the process's peak resident set (``ru_maxrss``) rises
during the assignment. The script checks that both methods give identical assignments.

Example (the figures in the README):
    python tools/analysis_tools/benchmark_assigner.py --size 1024 --instances 1862
A quick check that the script works:
    python tools/analysis_tools/benchmark_assigner.py --size 128 --instances 50
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ('chunked', 'whole')
RPN_ASSIGNER = dict(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, ignore_iof_thr=-1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2],
    )
    parser.add_argument('--size', type=int, default=1024, help='image height and width (px)')
    parser.add_argument('--instances', type=int, default=1862, help='ground-truth boxes')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (CPU)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto'")
    parser.add_argument('--skip-whole', action='store_true', help='time the chunked method only')
    parser.add_argument('--out', help='also write the figures to this JSON file')
    parser.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)  # METHOD RESULT_FILE
    return parser.parse_args(argv)


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


def measure(args: argparse.Namespace, method: str, result_file: str) -> dict:
    """One assignment in this process -> figures (call in a fresh process); the assignment is
    saved to ``result_file`` for the comparison."""
    import torch

    from instseg.models.task_modules import MaxIoUAssigner, bbox_overlaps

    torch.set_num_threads(args.threads)
    device = (
        ('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device
    )
    anchors, gts, labels = make_inputs(args.size, args.instances, device)
    assigner = MaxIoUAssigner(**RPN_ASSIGNER)
    cuda = device.startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if method == 'chunked':
        result = assigner.assign(anchors, gts, labels)
    else:
        result = assigner.assign_wrt_overlaps(bbox_overlaps(gts, anchors), labels)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - start
    torch.save([t.cpu() for t in (result.gt_inds, result.max_overlaps, result.labels)], result_file)
    return dict(
        method=method,
        device=device,
        anchors=len(anchors),
        instances=args.instances,
        seconds=round(seconds, 3),
        peak_mb=round(peak - before, 1),
        positives=int((result.gt_inds > 0).sum()),
    )


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args, *args.worker)))
        return []
    import torch

    methods = METHODS[:1] if args.skip_whole else METHODS
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            result_file = str(Path(tmp) / f'{method}.pt')
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
            done = subprocess.run(
                [*cmd, '--worker', method, result_file], capture_output=True, text=True
            )
            if done.returncode != 0:
                sys.exit(f'benchmark_assigner: the {method} run failed:\n{done.stderr[-3000:]}')
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            results.append(torch.load(result_file))
    first = rows[0]
    print(
        f'RPN assignment: {first["anchors"]} anchors x {first["instances"]} ground truths '
        f'({args.size}x{args.size} image), {first["device"]}'
    )
    print(f'{"method":<10}{"time (s)":>10}{"peak memory (MiB)":>20}{"positives":>11}')
    for row in rows:
        print(
            f'{row["method"]:<10}{row["seconds"]:>10.3f}{row["peak_mb"]:>20.1f}{row["positives"]:>11}'
        )
    if len(results) == 2:
        same = all(torch.equal(a, b) for a, b in zip(*results, strict=True))
        print('assignments identical' if same else 'ASSIGNMENTS DIFFER')
        for row in rows:
            row['identical'] = same
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == '__main__':
    main()
