"""Side-by-side speed of instseg's Mask R-CNN R50-FPN and torchvision's ``maskrcnn_resnet50_fpn``.

Both models get the same architecture settings (instseg's torchvision-equivalent config), the same
random weights (torchvision's initialisation, converted to instseg's keys, so both find the same
proposals and detections), the same pixels and ground truth, and the same thread count. Every
measurement runs in a fresh subprocess, so peak memory and allocator state do not leak from one
measurement to the next.

Example (the figures in the README):
    python tools/analysis_tools/benchmark_vs_torchvision.py --threads 2 --out bench.json
A quick check that the script works (what CI runs):
    python tools/analysis_tools/benchmark_vs_torchvision.py --tiny
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TV_CONFIG = REPO / 'configs/mask_rcnn/mask_rcnn_r50_fpn_torchvision.py'
NUCLEI_VAL = REPO.parent / 'shared' / 'data' / 'nuclei' / 'annotations' / 'instances_val.json'
NUM_CLASSES = 90  # torchvision's COCO head: 90 categories + background


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2],
    )
    parser.add_argument(
        '--config', default=str(TV_CONFIG), help="instseg's model (default: torchvision's twin)"
    )
    parser.add_argument('--threads', type=int, default=2, help='torch threads for both models')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--train-size', type=int, default=512, help='square training image side')
    parser.add_argument(
        '--infer-sizes', nargs='+', default=['512x512', '800x1333'], help='HxW inference sizes'
    )
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
    parser.add_argument('--tiny', action='store_true', help='a seconds-long smoke run (for CI)')
    parser.add_argument('--out', help='also write the JSON here')
    parser.add_argument('--worker', help=argparse.SUPPRESS)  # framework:task:size:setting
    args = parser.parse_args(argv)
    if args.tiny:
        args.train_size, args.infer_sizes, args.repeats, args.warmup = 128, ['128x160'], 1, 0
    return args


# ---------------------------------------------------------------- inputs shared by both models


def make_batch(num_images: int, h: int, w: int, num_instances: int, seed: int = 0):
    """``num_images`` uint8 BGR images (3, h, w) with elliptical objects, and their ground truth.

    Returns lists of images, boxes Tensor[N, 4] xyxy, labels Tensor[N], masks uint8 [N, h, w].
    """
    import cv2
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    images, boxes, labels, masks = [], [], [], []
    for _ in range(num_images):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        inst_masks, inst_boxes = [], []
        for _ in range(num_instances):
            rh, rw = rng.uniform(0.08, 0.25) * h, rng.uniform(0.08, 0.25) * w
            cy, cx = rng.uniform(rh, h - rh), rng.uniform(rw, w - rw)
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, (int(cx), int(cy)), (int(rw), int(rh)), 0, 0, 360, 1, -1)
            img[mask > 0] = rng.integers(0, 256, 3, dtype=np.uint8)
            ys, xs = np.nonzero(mask)
            inst_boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            inst_masks.append(mask)
        images.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        boxes.append(torch.tensor(inst_boxes, dtype=torch.float32))
        labels.append(torch.from_numpy(rng.integers(0, NUM_CLASSES, num_instances)))
        masks.append(torch.from_numpy(np.stack(inst_masks)))
    return images, boxes, labels, masks


# ---------------------------------------------------------------- the two models


def build_instseg(config: str, setting: set[str], device: str):
    """instseg's Mask R-CNN from ``config`` with torchvision's random weights (converted)."""
    import torch
    from mmengine.config import Config

    from instseg.checkpoint.load import convert_for_model
    from instseg.registry import MODELS

    cfg = Config.fromfile(config)
    cfg.model.roi_head.bbox_head.num_classes = NUM_CLASSES
    cfg.model.roi_head.mask_head.num_classes = NUM_CLASSES
    model = MODELS.build(cfg.model)
    state, _ = convert_for_model(model, build_torchvision(set(), 'cpu', 512, 512).state_dict())
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.endswith('num_batches_tracked')] or unexpected:
        raise RuntimeError(f'torchvision weights do not fit {config}: {missing} {unexpected}')
    model.to(device)
    if 'fuse' in setting:
        from mmcv.cnn import fuse_conv_bn

        model.eval()
        fuse_conv_bn(model.backbone)
    if 'channels_last' in setting:
        model.to(memory_format=torch.channels_last)
    return model


def build_torchvision(setting: set[str], device: str, min_size: int, max_size: int):
    """torchvision's Mask R-CNN R50-FPN as it is built for fine-tuning: frozen BN, stem+layer1
    frozen; its transform is set so that it does not resize the benchmark images."""
    import torch
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(
        backbone_name='resnet50', weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    model = MaskRCNN(backbone, num_classes=NUM_CLASSES + 1, min_size=min_size, max_size=max_size)
    model.to(device)
    if 'channels_last' in setting:
        model.to(memory_format=torch.channels_last)
    return model


# ---------------------------------------------------------------- one step of each kind


def instseg_samples(images, boxes, labels, masks, device):
    from mmengine.structures import InstanceData

    from instseg.structures import BitmapMasks, DetDataSample

    samples = []
    for img, b, lab, m in zip(images, boxes, labels, masks, strict=True):
        h, w = img.shape[-2:]
        sample = DetDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))
        )
        sample.gt_instances = InstanceData(
            bboxes=b.to(device), labels=lab.to(device), masks=BitmapMasks(m.numpy(), h, w)
        )
        samples.append(sample)
    return samples


def step_functions(framework: str, task: str, batch, setting: set[str], device: str, model):
    """A zero-argument callable that runs one timed step, and the model in the right mode.

    Training steps use SGD with lr 0: the optimiser does all its work but the weights stay at
    their random initialisation, so every timed step sees the same proposals and positives
    (random weights trained at a real lr drift apart differently in the two models).
    """
    import torch

    images, boxes, labels, masks = batch
    if framework == 'instseg':
        samples = instseg_samples(images, boxes, labels, masks, device)
        inputs = [img.to(device) for img in images]
        if task == 'train':
            model.train()
            optim = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)

            def train_step():
                data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
                loss, _ = model.parse_losses(model(**data, mode='loss'))
                loss.backward()
                optim.step()
                optim.zero_grad()

            return train_step
        model.eval()
        return lambda: model.test_step(dict(inputs=inputs, data_samples=samples))
    # torchvision wants float RGB in [0, 1] and labels counted from 1 (0 is its background)
    tv_images = [img.flip(0).float().div(255).to(device) for img in images]
    if task == 'train':
        model.train()
        targets = [
            dict(boxes=b.to(device), labels=(lab + 1).to(device), masks=m.to(device))
            for b, lab, m in zip(boxes, labels, masks, strict=True)
        ]
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=1e-4)

        def train_step():
            loss = sum(model(tv_images, targets).values())
            loss.backward()
            optim.step()
            optim.zero_grad()

        return train_step
    model.eval()
    return lambda: model(tv_images)


def timed(
    fn: Callable[[], object], setting: set[str], task: str, device: str, warmup: int, repeats: int
) -> list[float]:
    import torch

    dtype = torch.bfloat16 if 'bf16' in setting else torch.float16
    use_amp = bool({'bf16', 'fp16'} & setting)
    grad = torch.enable_grad() if task == 'train' else torch.inference_mode()
    times = []
    with grad, torch.autocast(device_type=device.split(':')[0], dtype=dtype, enabled=use_amp):
        for i in range(warmup + repeats):
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def count_flops(framework: str, model, batch, device: str) -> int:
    """FLOPs (2 x multiply-adds) of one inference forward, as torch's flop counter sees them.

    instseg's CPU RoIAlign is a sparse matrix product, which the counter would price as a dense
    one; torchvision's kernel stands in for it while counting (RoIAlign itself is not counted,
    for either model).
    """
    from unittest import mock

    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.ops import roi_align

    fn = step_functions(framework, 'infer', batch, set(), device, model)
    counter = FlopCounterMode(display=False)
    target = 'instseg.models.roi_heads.roi_extractors.single_level_roi_extractor.roi_align'
    with torch.inference_mode(), counter, mock.patch(target, roi_align):
        fn()
    return counter.get_total_flops()


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def run_worker(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process: ``framework:task:HxW:setting``."""
    import torch

    torch.set_num_threads(args.threads)
    framework, task, size, setting_str = args.worker.split(':')
    setting = set(filter(None, setting_str.split(',')))
    h, w = map(int, size.split('x'))
    num_images, num_instances = (2, 5) if task == 'train' else (1, 5)
    batch = make_batch(num_images, h, w, num_instances)
    device = args.device
    if framework == 'instseg':
        model = build_instseg(args.config, setting, device)
    else:
        model = build_torchvision(setting, device, min(h, w), max(h, w))
    result: dict = dict(framework=framework, task=task, size=size, setting=setting_str)
    if task == 'flops':
        result['flops'] = count_flops(framework, model, batch, device)
        return result
    fn = step_functions(framework, task, batch, setting, device, model)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    base_rss = rss_bytes()
    times = timed(fn, setting, task, device, args.warmup, args.repeats)
    result['median_s'] = statistics.median(times)
    if device.startswith('cuda'):
        result['peak_mem_mib'] = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is the process's lifetime peak in KiB; the model is built before base_rss
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result['peak_mem_mib'] = max(peak - base_rss, 0) / 2**20
    return result


def matmul_flops(threads: int, device: str, n: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul FLOP/s with ``threads`` threads (median of ``repeats``)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = timed(lambda: a @ b, set(), 'infer', device, 2, repeats)
    return 2 * n**3 / statistics.median(times)


def spawn(args: argparse.Namespace, spec: str) -> dict:
    cmd = [sys.executable, __file__, '--worker', spec, '--threads', str(args.threads)]
    cmd += ['--config', args.config]
    cmd += ['--device', args.device, '--repeats', str(args.repeats), '--warmup', str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark worker {spec} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- accuracy of the fast setting


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


# ---------------------------------------------------------------- the report


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return {}
    import torch

    fast = args.fast
    train_size = f'{args.train_size}x{args.train_size}'
    rows = []
    report: dict = dict(
        device=args.device if args.device != 'cpu' else f'cpu ({args.threads} threads)',
        torch=torch.__version__,
        matmul_fp32_flops=matmul_flops(args.threads, args.device),
        fast_setting=fast,
        rows=rows,
    )
    plan = [('train', train_size, '')] + [('infer', s, '') for s in args.infer_sizes]
    plan += [('infer', s, fast) for s in args.infer_sizes]
    for task, size, setting in plan:
        frameworks = ['instseg'] if setting else ['instseg', 'torchvision']
        results = {fw: spawn(args, f'{fw}:{task}:{size}:{setting}') for fw in frameworks}
        row = dict(task=task, size=size, setting=setting or 'fp32')
        for fw, res in results.items():
            row[f'{fw}_s'] = res['median_s']
            row[f'{fw}_mem_mib'] = res['peak_mem_mib']
        if task == 'infer' and not setting:
            flops = spawn(args, f'instseg:flops:{size}:')['flops']
            row['instseg_gflops'] = flops / 1e9
            row['instseg_flops_util'] = flops / row['instseg_s'] / report['matmul_fp32_flops']
        rows.append(row)
    base = {(r['task'], r['size']): r['torchvision_s'] for r in rows if 'torchvision_s' in r}
    for row in rows:
        row['ratio_vs_torchvision_fp32'] = row['instseg_s'] / base[(row['task'], row['size'])]
    if args.demo_checkpoint:
        report['demo_segm_mAP'] = {
            'fp32': demo_map(args.demo_config, args.demo_checkpoint, set(), args.device),
            fast: demo_map(
                args.demo_config, args.demo_checkpoint, set(fast.split(',')), args.device
            ),
        }
    if args.eval_ann:
        sys.path.insert(0, str(Path(__file__).parent))
        import benchmark_coco_eval

        report['coco_eval'] = benchmark_coco_eval.main(
            [args.eval_ann, '--per-image', str(args.eval_per_image)]
        )
    print_table(report)
    print(json.dumps(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


def print_table(report: dict) -> None:
    print(
        f'device: {report["device"]}, torch {report["torch"]}, '
        f'fp32 matmul {report["matmul_fp32_flops"] / 1e9:.0f} GFLOP/s'
    )
    header = f'{"task":<6}{"size":>10}{"setting":>26}{"instseg s":>11}{"tv s":>9}{"ratio":>7}'
    header += f'{"inst MiB":>10}{"tv MiB":>9}{"GFLOP":>8}{"util":>6}'
    print(header)
    for r in report['rows']:
        tv_s = f'{r["torchvision_s"]:.3f}' if 'torchvision_s' in r else '-'
        tv_mem = f'{r["torchvision_mem_mib"]:.0f}' if 'torchvision_mem_mib' in r else '-'
        gflops = f'{r["instseg_gflops"]:.0f}' if 'instseg_gflops' in r else '-'
        util = f'{r["instseg_flops_util"]:.0%}' if 'instseg_flops_util' in r else '-'
        print(
            f'{r["task"]:<6}{r["size"]:>10}{r["setting"]:>26}{r["instseg_s"]:>11.3f}{tv_s:>9}'
            f'{r["ratio_vs_torchvision_fp32"]:>7.2f}{r["instseg_mem_mib"]:>10.0f}{tv_mem:>9}'
            f'{gflops:>8}{util:>6}'
        )
    if 'coco_eval' in report:
        ev = report['coco_eval']
        print(
            f'CocoMetric {ev["cocometric_s"]:.2f} s vs pycocotools {ev["pycocotools_s"]:.2f} s '
            f'(ratio {ev["ratio"]:.2f}) on {ev["detections"]} detections, identical AP'
        )
    if 'demo_segm_mAP' in report:
        print(
            'demo segm mAP:', ', '.join(f'{k} {v:.3f}' for k, v in report['demo_segm_mAP'].items())
        )


if __name__ == '__main__':
    main()
