"""instseg's Mask R-CNN R50-FPN next to torchvision's maskrcnn_resnet50_fpn: time and memory.

Both models get the same architecture settings (instseg's torchvision-equivalent config), the same
random weights (torchvision's initialisation, converted to instseg's keys, so both find the same
proposals and detections), the same pixels and ground truth, and the same thread count. Every
measurement runs in a fresh process: the median of --repeats runs after --warmup runs. Training
steps are SGD with lr 0, so the weights, proposals and positives stay the same from step to step.
Other --configs (e.g. Swin-T) are timed with their own initialisation against the same
torchvision R50 rows.

examples:
  python tools/analysis_tools/benchmark.py vs-torchvision --threads 2 --json bench.json
  python tools/analysis_tools/benchmark.py vs-torchvision --device cuda --train-size 800x1333 \\
      --batch 2 --configs configs/mask_rcnn/mask_rcnn_r50_fpn_torchvision.py \\
      configs/swin/mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py
  python tools/analysis_tools/benchmark.py vs-torchvision --tiny   # a quick check (CI)
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from . import coco_eval
from .common import (
    REPO,
    PeakMemory,
    add_worker_argument,
    device_label,
    format_table,
    resolve_device,
    spawn_worker,
    time_calls,
    worker_task,
)
from .torchvision_pair import (
    build_instseg,
    build_torchvision,
    count_flops,
    make_batch,
    step_functions,
)

TV_CONFIG = REPO / 'configs/mask_rcnn/mask_rcnn_r50_fpn_torchvision.py'
NUCLEI_VAL = REPO.parent / 'shared' / 'data' / 'nuclei' / 'annotations' / 'instances_val.json'
INSTANCES = 5  # ground-truth objects per image
TRAIN_SIZE, INFER_SIZES = '512x512', ['512x512', '800x1333']


def _size(text: str) -> str:
    """``'512'`` -> ``'512x512'``; ``'800x1333'`` stays; anything else is an argparse error."""
    parts = text.lower().split('x')
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f'{text!r} is not a size (N or HxW, e.g. 800x1333)')
    return f'{int(parts[0])}x{int(parts[1])}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument(
        '--configs', nargs='+', default=[str(TV_CONFIG)],
        help="instseg's models (default: torchvision's R50-FPN twin)",
    )  # fmt: skip
    parser.add_argument('--threads', type=int, default=2, help='torch threads for both models')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'auto'")
    parser.add_argument('--train-size', type=_size, default=TRAIN_SIZE, help='N or HxW')
    parser.add_argument('--batch', type=int, default=2, help='images per training step')
    parser.add_argument(
        '--infer-sizes', nargs='+', type=_size, default=INFER_SIZES, help='N or HxW'
    )
    parser.add_argument('--infer-batch', type=int, default=1, help='images per inference step')
    parser.add_argument('--repeats', type=int, default=10, help='timed iterations (median)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument(
        '--fast',
        default='fuse,channels_last,bf16',
        help="instseg's fastest inference setting: comma list of fuse, channels_last, bf16, fp16",
    )
    parser.add_argument('--demo-config', help='with --demo-checkpoint: segm mAP of fp32 vs --fast')
    parser.add_argument('--demo-checkpoint', help='a trained demo checkpoint')
    parser.add_argument(
        '--eval-ann',
        default=str(NUCLEI_VAL) if NUCLEI_VAL.is_file() else None,
        help='also time CocoMetric against pycocotools on this annotation file (default: the '
        'nuclei val split of ../shared/data when present)',
    )
    parser.add_argument('--eval-per-image', type=int, default=1000, help='detections per image')
    parser.add_argument(
        '--tiny', action='store_true', help='a smoke run (CI): 128 px unless sizes are given'
    )
    add_worker_argument(parser)


def run_worker(args: argparse.Namespace) -> dict:
    """One measurement, task ``framework|task|HxW|setting|config``, in this fresh process."""
    import torch

    args, spec = worker_task(args)
    torch.set_num_threads(args.threads)
    framework, task, size, setting_str, config = spec.split('|')
    setting = set(filter(None, setting_str.split(',')))
    h, w = map(int, size.split('x'))
    batch = make_batch(args.batch if task == 'train' else args.infer_batch, h, w, INSTANCES)
    device = resolve_device(args.device)
    result: dict = dict(framework=framework, task=task, size=size, setting=setting_str)
    if framework == 'instseg':
        model, result['weights'] = build_instseg(config, setting, device)
    else:
        model = build_torchvision(setting, device, min(h, w), max(h, w))
    if task == 'flops':
        result['flops'] = count_flops(framework, model, batch, device)
        return result
    fn = step_functions(framework, task, batch, setting, device, model)
    dtype = torch.bfloat16 if 'bf16' in setting else torch.float16
    grad = torch.enable_grad() if task == 'train' else torch.inference_mode()
    autocast = torch.autocast(device.split(':')[0], dtype, enabled=bool({'bf16', 'fp16'} & setting))
    with PeakMemory(device) as memory, grad, autocast:
        times = time_calls(fn, device, args.warmup, args.repeats)
    result['median_s'] = statistics.median(times)
    result['peak_mem_mib'] = memory.mib
    return result


def matmul_flops(device: str, n: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul FLOP/s (median of ``repeats``), on this process's threads."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / statistics.median(time_calls(lambda: a @ b, device, 2, repeats))


def demo_map(config: str, checkpoint: str, setting: set[str], device: str) -> float:
    """segm mAP of a trained checkpoint on its config's test set, under ``setting``."""
    import torch
    from mmengine.runner import load_checkpoint

    from instseg.engine import Runner
    from instseg.engine.config import load_config

    cfg = load_config(config)
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    runner = Runner.from_cfg(cfg)
    model = runner.model
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.to(device).eval()
    if 'fuse' in setting:
        from mmcv.cnn import fuse_conv_bn

        fuse_conv_bn(model.backbone)
    if 'channels_last' in setting:
        model.to(memory_format=torch.channels_last)
    evaluator = runner.test_loop.evaluator
    dataloader = runner.test_loop.dataloader
    dtype = torch.bfloat16 if 'bf16' in setting else torch.float16
    use_amp = bool({'bf16', 'fp16'} & setting)
    with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=use_amp):
        for data in dataloader:
            evaluator.process(data_samples=model.test_step(data), data_batch=data)
    metrics = evaluator.evaluate(len(dataloader.dataset))
    return metrics['coco/segm_mAP']


def run(args: argparse.Namespace) -> dict:
    """Every row, each measurement in a fresh process; prints and returns the report."""
    import torch

    if args.tiny:  # small sizes unless given, one timed run each
        if args.train_size == TRAIN_SIZE:
            args.train_size = '128x128'
        if args.infer_sizes == INFER_SIZES:
            args.infer_sizes = ['128x160']
        args.repeats, args.warmup = 1, 0
    args.device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    fast, rows = args.fast, []
    report: dict = dict(
        device=device_label(args.device),
        torch=torch.__version__,
        matmul_fp32_flops=matmul_flops(args.device),
        fast_setting=fast,
        train_batch=args.batch,
        infer_batch=args.infer_batch,
        rows=rows,
    )
    plan = [('train', args.train_size, '')] + [('infer', s, '') for s in args.infer_sizes]
    plan += [('infer', s, fast) for s in args.infer_sizes]
    baseline = {}  # (task, size) -> torchvision's figures, measured once for every config
    for task, size, setting in plan:
        if not setting:
            baseline[task, size] = spawn_worker(
                'vs-torchvision', args, f'torchvision|{task}|{size}||'
            )
        for config in args.configs:
            res = spawn_worker('vs-torchvision', args, f'instseg|{task}|{size}|{setting}|{config}')
            row = dict(model=Path(config).stem, weights=res['weights'], task=task, size=size,
                       setting=setting or 'fp32', instseg_s=res['median_s'],
                       instseg_mem_mib=res['peak_mem_mib'])  # fmt: skip
            if not setting:
                row['torchvision_s'] = baseline[task, size]['median_s']
                row['torchvision_mem_mib'] = baseline[task, size]['peak_mem_mib']
            if task == 'infer' and not setting:
                flops = spawn_worker('vs-torchvision', args, f'instseg|flops|{size}||{config}')
                row['instseg_gflops'] = flops['flops'] / 1e9
                row['instseg_flops_util'] = (
                    flops['flops'] / row['instseg_s'] / report['matmul_fp32_flops']
                )
            row['ratio_vs_torchvision_fp32'] = row['instseg_s'] / baseline[task, size]['median_s']
            rows.append(row)
    if args.demo_checkpoint:
        report['demo_segm_mAP'] = {
            'fp32': demo_map(args.demo_config, args.demo_checkpoint, set(), args.device),
            fast: demo_map(
                args.demo_config, args.demo_checkpoint, set(fast.split(',')), args.device
            ),
        }
    if args.eval_ann:
        report['coco_eval'] = coco_eval.run(
            argparse.Namespace(ann_file=args.eval_ann, per_image=args.eval_per_image, seed=0)
        )
    print_table(report)
    return report


def print_table(report: dict) -> None:
    """The report as a table, one row per (model, task, size, setting)."""
    print(f'device: {report["device"]}, torch {report["torch"]}, fp32 matmul '
          f'{report["matmul_fp32_flops"] / 1e9:.0f} GFLOP/s; training steps of '
          f'{report["train_batch"]} images, inference of {report["infer_batch"]}')  # fmt: skip
    columns = ['model', 'task', 'size', 'setting', 'instseg s', 'tv s', 'ratio', 'inst MiB',
               'tv MiB', 'GFLOP', 'util']  # fmt: skip
    table = []
    for r in report['rows']:
        util = r.get('instseg_flops_util')
        table.append([
            r['model'], r['task'], r['size'], r['setting'], r['instseg_s'], r.get('torchvision_s'),
            round(r['ratio_vs_torchvision_fp32'], 2), round(r['instseg_mem_mib']),
            round(r['torchvision_mem_mib']) if 'torchvision_mem_mib' in r else None,
            round(r['instseg_gflops']) if 'instseg_gflops' in r else None,
            f'{util:.0%}' if util is not None else None,
        ])  # fmt: skip
    print(format_table(columns, table))
    if 'demo_segm_mAP' in report:
        print(
            'demo segm mAP:', ', '.join(f'{k} {v:.3f}' for k, v in report['demo_segm_mAP'].items())
        )
