"""Render what the data pipeline produces (image, masks, boxes, class names) to PNG files."""

from __future__ import annotations

import argparse
import os
import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

from instseg.engine.config import load_config
from instseg.registry import DATASETS
from instseg.visualization import DetLocalVisualizer

EXAMPLES = """example:
  python tools/analysis_tools/browse_dataset.py configs/demo/mask_rcnn_r18_fpn_demo.py \\
      --output-dir browse/ --not-show --num-images 20

writes OUTPUT_DIR/<image>.png: the image as the training pipeline outputs it (after resizing,
flipping, cropping, ...) with the ground-truth masks, boxes and class names drawn on it.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Browse a dataset through its pipeline.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', help='write the drawn images here as PNG')
    parser.add_argument('--not-show', action='store_true', help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2, help='seconds per shown image')
    parser.add_argument(
        '--phase', choices=['train', 'val', 'test'], default='train', help='which dataloader'
    )
    parser.add_argument('--num-images', type=int, help='stop after this many (default: all)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    args = parser.parse_args(argv)
    if args.output_dir is None and args.not_show:
        parser.error('nothing to do: give --output-dir, or leave out --not-show')
    return args


def to_rgb_uint8(inputs: torch.Tensor) -> np.ndarray:
    """A packed image tensor [C, H, W] (BGR, any dtype) -> RGB uint8 [H, W, 3] for drawing.

    Non-8-bit images are stretched from their own min..max to 0..255.
    """
    image = inputs.detach().cpu().numpy().transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
        low, high = float(image.min()), float(image.max())
        image = ((image - low) * (255.0 / max(high - low, 1e-6))).round().astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., 2::-1])


def main(argv: list[str] | None = None) -> list[str]:
    """Draw the pipeline outputs; returns the PNG paths written."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'instseg'))
    loader_key = f'{args.phase}_dataloader'
    if loader_key not in cfg:
        raise KeyError(f'{args.config} has no {loader_key}')
    dataset = DATASETS.build(cfg[loader_key].dataset)
    visualizer = DetLocalVisualizer(name='browse_dataset')
    visualizer.dataset_meta = dataset.metainfo
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    count = len(dataset) if args.num_images is None else min(args.num_images, len(dataset))
    written: list[str] = []
    names: set[str] = set()
    for index in range(count):
        item = dataset[index]
        sample = item['data_samples']
        stem = Path(sample.img_path).stem if 'img_path' in sample else f'{index:06d}'
        name = stem if stem not in names else f'{stem}_{index}'
        names.add(name)
        out_file = osp.join(args.output_dir, name + '.png') if args.output_dir else None
        visualizer.add_datasample(
            name,
            to_rgb_uint8(item['inputs']),
            sample,
            draw_pred=False,
            show=not args.not_show,
            wait_time=args.show_interval,
            out_file=out_file,
        )
        if out_file:
            written.append(out_file)
    print(
        f'{count} images of the {args.phase} set'
        + (f' written to {args.output_dir}' if written else '')
    )
    return written


if __name__ == '__main__':
    main()
