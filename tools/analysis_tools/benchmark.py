"""Measure a detector's inference speed (images/s) on its test set, warm-up excluded."""

from __future__ import annotations

import argparse
import time

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

from instseg.apis import init_detector

EXAMPLES = """example:
  python tools/analysis_tools/benchmark.py configs/demo/mask_rcnn_r18_fpn_demo.py \\
      work_dirs/mask_rcnn_r18_fpn_demo/epoch_10.pth --num-images 50 --warmup 5 --device cpu

prints the device, the network input size (after the test pipeline and batch padding) and
images/s over --num-images images, one per forward pass, after --warmup untimed ones. Data
loading is not timed.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Benchmark inference speed.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--num-images', type=int, default=50, help='timed images')
    parser.add_argument('--warmup', type=int, default=5, help='untimed images first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.warmup < 0:
        parser.error('--num-images must be >= 1 and --warmup >= 0')
    return args


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def benchmark(args: argparse.Namespace) -> dict:
    """Time ``model.test_step`` per image; returns the figures it prints."""
    model = init_detector(args.config, args.checkpoint, args.device, args.cfg_options)
    loader_cfg = model.cfg.test_dataloader.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)
    device = next(model.parameters()).device
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
                _sync(device)
                start = time.perf_counter()
                model(**processed, mode='predict')
                _sync(device)
                if done >= args.warmup:
                    timed += time.perf_counter() - start
                    sizes.append(tuple(processed['inputs'].shape[-2:]))
                done += 1
    heights, widths = zip(*sizes, strict=True)
    result = dict(
        device=str(device) if device.type != 'cpu' else f'cpu ({torch.get_num_threads()} threads)',
        input_size=(round(sum(heights) / len(heights)), round(sum(widths) / len(widths))),
        num_images=args.num_images,
        warmup=args.warmup,
        images_per_s=args.num_images / timed,
    )
    if device.type == 'cuda':
        result['device'] += f' {torch.cuda.get_device_name(device)}'
    print(f'device: {result["device"]}')
    print(f'input size (H x W, mean after padding): {result["input_size"][0]} x '
          f'{result["input_size"][1]}')  # fmt: skip
    print(f'timed {args.num_images} images after {args.warmup} warm-up images')
    print(f'inference: {result["images_per_s"]:.2f} images/s '
          f'({1000 / result["images_per_s"]:.1f} ms/image)')  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> dict:
    """Benchmark; returns the printed figures as a dict."""
    return benchmark(parse_args(argv))


if __name__ == '__main__':
    main()
