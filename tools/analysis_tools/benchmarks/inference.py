"""Inference speed of a trained detector on its test set: images/s after warm-up.

example:
  python tools/analysis_tools/benchmark.py inference configs/demo/mask_rcnn_r18_fpn_demo.py \\
      work_dirs/mask_rcnn_r18_fpn_demo/epoch_13.pth --num-images 50 --warmup 5 --device cpu

prints the device, the network input size (after the test pipeline and batch padding) and
images/s over --num-images images, one per forward pass, after --warmup untimed ones. Data
loading is not timed.
"""

from __future__ import annotations

import argparse
import time

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

from instseg.apis import init_detector

from .common import device_label, format_table, sync


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--num-images', type=int, default=50, help='timed images')
    parser.add_argument('--warmup', type=int, default=5, help='untimed images first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')


def run(args: argparse.Namespace) -> dict:
    """Time the detector's forward pass per image; returns the figures it prints."""
    if args.num_images < 1 or args.warmup < 0:
        raise SystemExit('--num-images must be >= 1 and --warmup >= 0')
    model = init_detector(args.config, args.checkpoint, args.device, args.cfg_options)
    loader_cfg = model.cfg.test_dataloader.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)
    device = str(next(model.parameters()).device)
    needed = args.warmup + args.num_images
    if len(loader.dataset) < needed:
        print(
            f'note: the test set has {len(loader.dataset)} images; '
            f'cycling through it for {needed} iterations'
        )
    sizes, timed, done = [], 0.0, 0
    with torch.no_grad():
        while done < needed:
            for data in loader:
                if done >= needed:
                    break
                processed = model.data_preprocessor(data, False)
                sync(device)
                start = time.perf_counter()
                model(**processed, mode='predict')
                sync(device)
                if done >= args.warmup:
                    timed += time.perf_counter() - start
                    sizes.append(tuple(processed['inputs'].shape[-2:]))
                done += 1
    heights, widths = zip(*sizes, strict=True)
    result = dict(
        device=device_label(device),
        input_size=(round(sum(heights) / len(heights)), round(sum(widths) / len(widths))),
        num_images=args.num_images,
        warmup=args.warmup,
        images_per_s=args.num_images / timed,
    )
    print(f'device: {result["device"]}; {args.num_images} images timed after {args.warmup} '
          f'warm-up images; input size is the mean after padding')  # fmt: skip
    size = f'{result["input_size"][0]} x {result["input_size"][1]}'
    table = [[size, result['images_per_s'], 1000 / result['images_per_s']]]
    print(format_table(['input H x W', 'images/s', 'ms/image'], table))
    return result
