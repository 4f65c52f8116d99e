"""Peak memory of one Mask R-CNN training step on a crowded image, with and without ``with_cp``.

The image carries ``--instances`` polygon instances (loaded as lazy RLE masks, as COCO's are) and
goes through the training transforms. Each setting runs in a fresh subprocess. On a GPU the
figure is ``torch.cuda.max_memory_allocated`` during the step over what was allocated before it;
on CPU it is how far the process's peak resident set (``ru_maxrss``) rises above its size just
before the step.

Example (the figures in the README):
    python tools/analysis_tools/benchmark_memory.py --size 1024 --instances 500
A quick check that the script works (what CI runs):
    python tools/analysis_tools/benchmark_memory.py --size 96 --instances 20 \\
        --config configs/demo/mask_rcnn_r18_fpn_demo.py
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / 'configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py'
PIPELINE = [
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=1.0),
    dict(type='PackDetInputs'),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2],
    )
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='model config')
    parser.add_argument('--size', type=int, default=1024, help='image height and width (px)')
    parser.add_argument('--instances', type=int, default=500, help='instances in the image')
    parser.add_argument('--depth', type=int, help="override the ResNet backbone's depth")
    parser.add_argument('--threads', type=int, default=2, help='torch threads (CPU)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto'")
    parser.add_argument('--out', help='also write the figures to this JSON file')
    parser.add_argument('--worker', choices=['plain', 'with_cp'], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_sample(size: int, num_instances: int, num_classes: int, seed: int = 0) -> dict:
    """A dataset record as ``CocoDataset`` yields it: a random ``size`` x ``size`` BGR image and
    ``num_instances`` random convex polygons (radius ``size/64`` to ``size/16``) as instances."""
    import numpy as np

    rng = np.random.default_rng(seed)
    instances = []
    for _ in range(num_instances):
        radius = rng.uniform(size / 64, size / 16)
        cx, cy = rng.uniform(radius, size - radius, 2)
        angles = np.sort(rng.uniform(0, 2 * math.pi, 8))
        xs = cx + radius * np.cos(angles)
        ys = cy + radius * np.sin(angles)
        instances.append(
            dict(
                bbox=[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())],
                bbox_label=int(rng.integers(num_classes)),
                mask=[np.stack([xs, ys], axis=1).ravel().tolist()],
                ignore_flag=0,
            )
        )
    return dict(
        img=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        img_id=0,
        img_path='synthetic.png',
        img_shape=(size, size),
        ori_shape=(size, size),
        height=size,
        width=size,
        instances=instances,
    )


def build_batch(size: int, num_instances: int, num_classes: int) -> dict:
    """``make_sample`` through the training transforms, collated as a batch of one."""
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    init_default_scope('instseg')
    import instseg.datasets  # noqa: F401  (registers the transforms)

    return pseudo_collate([Compose(PIPELINE)(make_sample(size, num_instances, num_classes))])


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure(args: argparse.Namespace, with_cp: bool) -> dict:
    """One training step in this process -> figures (call in a fresh process)."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    from instseg.registry import MODELS

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the same weights for both settings
    device = (
        ('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device
    )
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.with_cp = with_cp
    if args.depth is not None:
        cfg.model.backbone.depth = args.depth
    num_classes = cfg.model.roi_head.bbox_head.num_classes
    data = build_batch(args.size, args.instances, num_classes)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-4))
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _rss_mb()
    start = time.perf_counter()
    losses = model.train_step(data, wrapper)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return dict(
        with_cp=with_cp,
        device=device,
        step_peak_mb=round(peak - before, 1),
        step_s=round(time.perf_counter() - start, 2),
        loss=float(losses['loss']),
        backbone_depth=cfg.model.backbone.depth,
    )


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(args, args.worker == 'with_cp')))
        return []
    rows = []
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != '--out']
    if args.out is not None:
        forwarded.remove(args.out)
    for setting in ('plain', 'with_cp'):
        proc = subprocess.run(
            [sys.executable, __file__, *forwarded, '--worker', setting],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path])),
        )
        if proc.returncode != 0:
            raise RuntimeError(f'benchmark worker ({setting}) failed:\n{proc.stderr[-3000:]}')
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    unit = 'GPU memory allocated' if rows[0]['device'].startswith('cuda') else 'peak RSS growth'
    print(
        f'One training step: {args.size}x{args.size} image, {args.instances} instances, '
        f'ResNet-{rows[0]["backbone_depth"]}, {rows[0]["device"]} ({args.threads} threads)'
    )
    print(f'{"with_cp":<8} {unit + " (MiB)":>28} {"step (s)":>9} {"loss":>8}')
    for row in rows:
        print(
            f'{str(row["with_cp"]):<8} {row["step_peak_mb"]:>28.1f} {row["step_s"]:>9.2f} '
            f'{row["loss"]:>8.3f}'
        )
    saved = rows[0]['step_peak_mb'] - rows[1]['step_peak_mb']
    share = 100 * saved / rows[0]['step_peak_mb'] if rows[0]['step_peak_mb'] > 0 else 0.0
    print(f'with_cp saves {saved:.1f} MiB ({share:.0f}%)')
    if args.out is not None:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == '__main__':
    main()
