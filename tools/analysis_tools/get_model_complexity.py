"""Parameters and FLOPs of a config's model: get_model_complexity.py CONFIG [--shape H W].

Counts total and trainable parameters of the whole detector, and FLOPs of one image through the
backbone, neck and RPN head (the detector's ``mode='tensor'`` forward) with
``torch.utils.flop_counter``: a multiply-add counts as 2 FLOPs; mmdetection's and the Swin
papers' "FLOPs" count it as 1 and are the MACs printed next to them. The RoI heads' cost depends
on the number of proposals and is not included. Nothing is downloaded: weights are not loaded.
"""

from __future__ import annotations

import argparse

import torch
from mmengine.config import DictAction
from mmengine.registry import DefaultScope
from torch.utils.flop_counter import FlopCounterMode

from instseg.engine.config import load_config
from instseg.registry import MODELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Print the parameters and FLOPs of a config's model.",
        epilog='example: python tools/analysis_tools/get_model_complexity.py '
        'configs/swin/mask_rcnn_swin-t-p4-w7_fpn_1x_coco.py --shape 800 1333',
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[800, 1333],
        metavar=('H', 'W'),
        help="input image height and width, padded to the data preprocessor's size divisor "
        '(default: 800 1333)',
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return parser.parse_args(argv)


def _human(value: float) -> str:
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f} {unit}'
    return f'{value:.0f} '


def main(argv: list[str] | None = None) -> dict[str, int]:
    """Print the figures; return them (``total_params``, ``trainable_params``, ``flops`` and
    the FLOPs of each top-level module)."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'instseg')):
        model = MODELS.build(cfg.model).eval()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    divisor = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1) or 1
    height, width = (-(-size // divisor) * divisor for size in args.shape)
    inputs = torch.randn(1, 3, height, width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs, mode='tensor')
    flops = counter.get_total_flops()
    per_module = {
        name.split('.')[1]: sum(counts.values())
        for name, counts in counter.get_flop_counts().items()
        if name.count('.') == 1
    }

    print(f'config: {args.config}')
    print(f'input shape: (1, 3, {height}, {width})')
    print(f'total parameters: {total:,} ({_human(total)})')
    print(f'trainable parameters: {trainable:,} ({_human(trainable)})')
    print(
        f'FLOPs (backbone, neck, RPN head): {flops:,} ({_human(flops)}FLOPs, '
        f'{_human(flops / 2)}MACs)'
    )
    for name, count in per_module.items():
        print(f'  {name}: {_human(count)}FLOPs')
    return dict(total_params=total, trainable_params=trainable, flops=flops, **per_module)


if __name__ == '__main__':
    main()
