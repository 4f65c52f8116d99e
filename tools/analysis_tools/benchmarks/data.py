"""A config's data pipeline alone: images/s in one process and peak memory per image.

example:
  python tools/analysis_tools/benchmark.py data configs/_base_/datasets/nuclei.py \\
      --data-root ../shared/data/nuclei/ --num-images 20

Runs the split's dataset (parsing + pipeline, no model, no DataLoader) in this one process, as a
DataLoader worker would: images/s is the rate of one worker. Memory is measured in a second
pass with tracemalloc (Python and numpy allocations, which include every image and mask array)
and compared with what full-size bitmaps of every instance would take. Prints one
'figure: value' line per figure.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

from instseg.engine.config import load_config
from instseg.registry import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--num-images', type=int, default=20, help='images timed (default 20)')
    parser.add_argument('--warmup', type=int, default=2, help='images run before timing')
    parser.add_argument('--data-root', help="override the dataset's data_root")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')


def _describe(sample: dict) -> tuple[int, int, float]:
    """(instances, image pixels, summed instance box area in pixels) of a packed sample."""
    inputs = sample['inputs']
    pixels = int(inputs.shape[-2] * inputs.shape[-1])
    data_sample = sample['data_samples']
    num, box_area = 0, 0.0
    for field in ('gt_instances', 'ignored_instances'):
        if field in data_sample:
            instances = getattr(data_sample, field)
            num += len(instances)
            if 'bboxes' in instances and len(instances):
                boxes = instances.bboxes
                box_area += float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum())
    return num, pixels, box_area


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def benchmark(dataset, num_images: int, warmup: int) -> dict:
    """Time ``num_images`` samples (after ``warmup``), then trace memory for the same ones."""
    indices = [i % len(dataset) for i in range(warmup + num_images)]
    for index in indices[:warmup]:
        dataset[index]
    rss_before = _max_rss_mib()
    seconds, described = [], []
    for index in indices[warmup:]:
        start = time.perf_counter()
        sample = dataset[index]
        seconds.append(time.perf_counter() - start)
        described.append(_describe(sample))
        del sample
    rss_after = _max_rss_mib()
    peaks = []
    tracemalloc.start()
    try:
        for index in indices[warmup:]:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            sample = dataset[index]
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            del sample
    finally:
        tracemalloc.stop()
    return dict(seconds=seconds, described=described, peaks=peaks,
                rss_growth=rss_after - rss_before, rss=rss_after)  # fmt: skip


def report(result: dict, split: str) -> list[str]:
    """The figures as 'name: value' lines."""
    mib = 2.0**20
    seconds, peaks = result['seconds'], result['peaks']
    nums = [d[0] for d in result['described']]
    pixels = [d[1] for d in result['described']]
    # What every instance as a full-size uint8 bitmap would take, per image.
    dense = [n * p for n, p, _ in result['described']]
    worst = max(range(len(peaks)), key=lambda i: peaks[i])
    ratios = [p / d for p, d in zip(peaks, dense, strict=True) if d]
    lines = [
        f'split: {split}, {len(seconds)} images timed in one process (no model)',
        f'images/s per worker: {len(seconds) / sum(seconds):.2f}',
        f'time per image: mean {1000 * statistics.mean(seconds):.1f} ms, '
        f'max {1000 * max(seconds):.1f} ms',
        f'instances per image: mean {statistics.mean(nums):.0f}, max {max(nums)}',
        f'output image size: mean {statistics.mean(pixels) / 1e6:.2f} Mpixel',
        f'peak traced memory per image: mean {statistics.mean(peaks) / mib:.2f} MiB, '
        f'max {max(peaks) / mib:.2f} MiB',
        f'worst image: {nums[worst]} instances, {pixels[worst] / 1e6:.2f} Mpixel, '
        f'summed box area {result["described"][worst][2] / 1e6:.3f} Mpixel, peak '
        f'{peaks[worst] / mib:.1f} MiB; as full-size bitmaps its masks alone would take '
        f'{dense[worst] / mib:.0f} MiB',
        'peak / full-size bitmaps: ' + (f'max {max(ratios):.4f}' if ratios else 'n/a (no masks)'),
        _growth_line(nums, pixels, peaks),
        f'process max RSS: {result["rss"]:.0f} MiB (grew {result["rss_growth"]:.0f} MiB while '
        f'timing)',
    ]
    return lines


def _growth_line(nums: list[int], pixels: list[int], peaks: list[int]) -> str:
    """Least-squares slope of peak memory over instance count, next to a bitmap's size."""
    bitmap_kib = statistics.mean(pixels) / 1024
    if len(set(nums)) < 2:
        return f'peak growth per instance: n/a (one instance count); a full-size bitmap: ' \
               f'{bitmap_kib:.0f} KiB'  # fmt: skip
    slope = float(np.polyfit(nums, peaks, 1)[0]) / 1024
    return (
        f'peak growth per instance: {slope:.2f} KiB (least squares over the images); '
        f'a full-size bitmap: {bitmap_kib:.0f} KiB'
    )


def run(args: argparse.Namespace) -> dict:
    """Build the split's dataset and measure it; prints and returns the figures."""
    if args.num_images < 1 or args.warmup < 0:
        raise SystemExit('--num-images must be >= 1 and --warmup >= 0')
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'instseg'))
    loader_key = f'{args.split}_dataloader'
    if loader_key not in cfg:
        raise KeyError(f'{args.config} has no {loader_key}')
    dataset_cfg = cfg[loader_key].dataset
    if args.data_root is not None:
        dataset_cfg.data_root = args.data_root
    start = time.perf_counter()
    dataset = DATASETS.build(dataset_cfg)
    dataset.full_init()
    parse_s = time.perf_counter() - start
    if len(dataset) == 0:
        raise ValueError(f'the {args.split} dataset of {args.config} is empty')
    result = benchmark(dataset, args.num_images, args.warmup)
    lines = [f'dataset: {len(dataset)} images, built and parsed in {parse_s:.2f} s']
    lines += report(result, args.split)
    for line in lines:
        print(line)
    return dict(
        split=args.split,
        images=len(dataset),
        parse_s=parse_s,
        images_per_s=len(result['seconds']) / sum(result['seconds']),
        peak_traced_mib=[p / 2**20 for p in result['peaks']],
        lines=lines,
    )
