"""Peak memory of one Mask R-CNN training step on a crowded image, with and without with_cp.

The image carries --instances polygon instances (loaded as lazy RLE masks, as COCO's are) and
goes through the training transforms. Each setting runs in a fresh process; peak memory is
measured as benchmarks/common.py's PeakMemory describes.

examples:
  python tools/analysis_tools/benchmark.py memory --size 1024 --instances 500   # the README's
  python tools/analysis_tools/benchmark.py memory --size 96 --instances 20 \\
      --config configs/demo/mask_rcnn_r18_fpn_demo.py                           # a quick check
"""

from __future__ import annotations

import argparse
import gc
import math
import time

from .common import (
    REPO,
    PeakMemory,
    add_worker_argument,
    device_label,
    format_table,
    resolve_device,
    spawn_worker,
    worker_task,
)

DEFAULT_CONFIG = REPO / 'configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py'
PIPELINE = [
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=1.0),
    dict(type='PackDetInputs'),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='model config')
    parser.add_argument('--size', type=int, default=1024, help='image height and width (px)')
    parser.add_argument('--instances', type=int, default=500, help='instances in the image')
    parser.add_argument('--depth', type=int, help="override the ResNet backbone's depth")
    parser.add_argument('--threads', type=int, default=2, help='torch threads (CPU)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto'")
    add_worker_argument(parser)


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


def run_worker(args: argparse.Namespace) -> dict:
    """One training step (task ``plain`` or ``with_cp``) in this fresh process -> figures."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    from instseg.registry import MODELS

    args, task = worker_task(args)
    with_cp = task == 'with_cp'
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the same weights for both settings
    device = resolve_device(args.device)
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
    start = time.perf_counter()
    with PeakMemory(device) as memory:
        losses = model.train_step(data, wrapper)
    return dict(
        with_cp=with_cp,
        device=device_label(device),
        step_peak_mb=round(memory.mib, 1),
        step_s=round(time.perf_counter() - start, 2),
        loss=float(losses['loss']),
        backbone_depth=cfg.model.backbone.depth,
    )


def run(args: argparse.Namespace) -> dict:
    """Both settings, each in a fresh process; prints and returns their figures."""
    rows = [spawn_worker('memory', args, setting) for setting in ('plain', 'with_cp')]
    unit = 'GPU memory allocated' if rows[0]['device'].startswith('cuda') else 'peak RSS growth'
    saved = rows[0]['step_peak_mb'] - rows[1]['step_peak_mb']
    share = 100 * saved / rows[0]['step_peak_mb'] if rows[0]['step_peak_mb'] > 0 else 0.0
    print(f'One training step: {args.size}x{args.size} image, {args.instances} instances, '
          f'ResNet-{rows[0]["backbone_depth"]}, {rows[0]["device"]}')  # fmt: skip
    table = [[r['with_cp'], r['step_peak_mb'], r['step_s'], r['loss']] for r in rows]
    print(format_table(['with_cp', f'{unit} (MiB)', 'step (s)', 'loss'], table))
    print(f'with_cp saves {saved:.1f} MiB ({share:.0f}%)')
    return dict(size=args.size, instances=args.instances, rows=rows, saved_mb=round(saved, 1))
