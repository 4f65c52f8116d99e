"""YOLACT against Mask R-CNN: inference time at one input size, and mAP under one training budget.

--part inference (the default) builds YOLACT R50 and Mask R-CNN R50 from their COCO configs with
random weights and times one forward pass (model.test_step, preprocessing included) on a random
--size x --size image, alternating the two models, with --threads torch threads. Score
thresholds are set to 0 so both keep their full max_per_img=100 detections (random weights score
below any threshold): the mask stages then do the work of a real image.

--part training trains the demo Mask R-CNN and the demo YOLACT from scratch on the generated
demo data for --budget-s seconds of wall time each (same data order, AdamW 1e-3, 100-iteration
linear warm-up, then a constant rate instead of the demos' epoch schedule), then evaluates
both on the validation set: bbox/segm mAP, ms per training iteration, ms per validation image.

example:
  python tools/analysis_tools/benchmark.py yolact --part inference --threads 1 --num-images 10
  nice -n 10 python tools/analysis_tools/benchmark.py yolact --part training --budget-s 300

Run on an otherwise idle machine: other load inflates the times.
"""

from __future__ import annotations

import argparse
import os.path as osp
import statistics
import time

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from instseg.engine import Runner
from instseg.engine.config import load_config
from instseg.registry import MODELS
from instseg.structures import DetDataSample

from .common import device_label, format_table, sync

YOLACT_R50 = 'configs/yolact/yolact_r50_1xb8-55e_coco.py'
MASK_RCNN_R50 = 'configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py'
DEMOS = ('configs/demo/mask_rcnn_r18_fpn_demo.py', 'configs/demo/yolact_r18_demo.py')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument('--part', choices=['inference', 'training', 'both'], default='inference')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (both models)')
    parser.add_argument('--size', type=int, default=550, help='inference input side, pixels')
    parser.add_argument('--num-images', type=int, default=10, help='timed passes per model')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes per model first')
    parser.add_argument('--budget-s', type=float, default=600.0, help='training seconds per model')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_yolact')


def _random_weight_model(config: str) -> torch.nn.Module:
    cfg = Config.fromfile(config).model
    cfg.backbone.init_cfg = None
    if cfg.type == 'YOLACT':
        cfg.test_cfg.score_thr = 0.0
    else:
        cfg.test_cfg.rcnn.score_thr = 0.0
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def inference(args: argparse.Namespace) -> dict:
    """ms per image of YOLACT R50 and Mask R-CNN R50 at ``args.size``, alternated."""
    torch.manual_seed(0)
    models = {'YOLACT R50': _random_weight_model(YOLACT_R50)}
    models['Mask R-CNN R50'] = _random_weight_model(MASK_RCNN_R50)
    size = args.size
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0))

    def step(model: torch.nn.Module) -> int:
        data = dict(inputs=[image], data_samples=[DetDataSample(metainfo=meta)])
        with torch.no_grad():
            (out,) = model.test_step(data)
        return len(out.pred_instances)

    times: dict[str, list[float]] = {name: [] for name in models}
    detections = {}
    for i in range(args.warmup + args.num_images):
        for name, model in models.items():  # alternate, so load changes hit both alike
            start = time.perf_counter()
            detections[name] = step(model)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    rows = [
        dict(
            model=name,
            ms_mean=1000 * statistics.fmean(t),
            ms_median=1000 * statistics.median(t),
            detections=detections[name],
        )
        for name, t in times.items()
    ]
    ratio = rows[1]['ms_median'] / rows[0]['ms_median']
    print(f'\ninference at {size}x{size}, random weights, {torch.get_num_threads()} thread(s)')
    print(format_table(
        ['model', 'ms/img mean', 'ms/img median', 'detections'],
        [[r['model'], round(r['ms_mean'], 1), round(r['ms_median'], 1), r['detections']]
         for r in rows],
    ))  # fmt: skip
    print(f'Mask R-CNN / YOLACT: {ratio:.2f}x the time per image (medians)')
    return dict(size=size, rows=rows, maskrcnn_over_yolact=ratio)


class _Budget(Hook):
    """Times each training step and stops training once ``budget_s`` of wall time has passed."""

    priority = 'VERY_HIGH'

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.times: list[float] = []
        self._begin = self._start = 0.0

    def before_train(self, runner) -> None:
        self._begin = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        sync(str(next(runner.model.parameters()).device))
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        sync(str(next(runner.model.parameters()).device))
        now = time.perf_counter()
        self.times.append(now - self._start)
        if now - self._begin >= self.budget_s:
            runner.train_loop.stop_training = True


def train_one(config: str, args: argparse.Namespace) -> dict:
    """Train ``config`` for ``args.budget_s`` seconds, evaluate; returns its figures."""
    name = osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, None, osp.join(args.work_dir, name))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=10**9, val_interval=10**9)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, end=100)]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False, save_best=None
    )
    cfg.default_hooks.pop('curves', None)
    cfg.log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
    runner = Runner.from_cfg(cfg)
    budget = _Budget(args.budget_s)
    runner.register_hook(budget)
    runner.train()
    start = time.perf_counter()
    metrics = runner.val_loop.run()
    val_s = time.perf_counter() - start
    return dict(
        name=name,
        iterations=len(budget.times),
        train_ms_per_iter=1000 * statistics.median(budget.times),
        val_ms_per_image=1000 * val_s / len(runner.val_dataloader.dataset),
        bbox_mAP=metrics.get('coco/bbox_mAP', float('nan')),
        segm_mAP=metrics.get('coco/segm_mAP', float('nan')),
    )


def training(args: argparse.Namespace) -> dict:
    """Both demos under the same wall-clock budget."""
    rows = [train_one(config, args) for config in DEMOS]
    print(f'\ntraining budget {args.budget_s:.0f} s per model, {torch.get_num_threads()} thread(s)')
    print(format_table(
        ['config', 'iters', 'train ms/iter', 'val ms/img', 'bbox mAP', 'segm mAP'],
        [[r['name'], r['iterations'], round(r['train_ms_per_iter'], 1),
          round(r['val_ms_per_image'], 1), r['bbox_mAP'], r['segm_mAP']] for r in rows],
    ))  # fmt: skip
    return dict(budget_s=args.budget_s, rows=rows)


def run(args: argparse.Namespace) -> dict:
    """The parts chosen by ``--part``; prints and returns their figures."""
    if args.threads < 1 or args.num_images < 1 or args.warmup < 0 or args.budget_s <= 0:
        raise SystemExit('--threads and --num-images must be >= 1, --warmup >= 0, --budget-s > 0')
    torch.set_num_threads(args.threads)
    report: dict = dict(device=device_label('cpu'), threads=args.threads)
    if args.part in ('inference', 'both'):
        report['inference'] = inference(args)
    if args.part in ('training', 'both'):
        report['training'] = training(args)
    return report
