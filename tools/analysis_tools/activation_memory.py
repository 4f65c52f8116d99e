"""Activation memory kept for the backward pass, with and without ``with_cp``, on any device.

python tools/analysis_tools/activation_memory.py CONFIG [--shape H W] [--batch N] [--backbone-only]

Builds the config's model twice (backbone ``with_cp=False`` and ``True``), runs one training-mode
forward (the backbone alone, or backbone, neck and RPN head through ``mode='tensor'``) and sums
the bytes of every tensor autograd saves for backward, counted once per storage and without
parameters. With checkpointing, a block keeps only its inputs and recomputes the rest in backward,
so the difference is the memory ``with_cp`` saves. Counting saved tensors works on CPU hosts,
where torch keeps no allocator statistics.
"""

from __future__ import annotations

import argparse

import torch
from mmengine.config import DictAction
from mmengine.registry import DefaultScope
from torch import nn

from instseg.engine.config import load_config
from instseg.registry import MODELS


def saved_activation_bytes(run: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the non-parameter tensors autograd keeps from ``run(inputs)``'s forward."""
    params = {p.untyped_storage().data_ptr() for p in run.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params and storage.nbytes():
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outputs = run(inputs)
    del outputs
    return sum(storages.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Activation memory with and without with_cp.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--backbone-only', action='store_true', help='measure the backbone alone')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[bool, int]:
    """Print both figures and the saving; return ``{with_cp: bytes}``."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    torch.manual_seed(0)
    inputs = torch.randn(args.batch, 3, *args.shape)
    results: dict[bool, int] = {}
    for with_cp in (False, True):
        cfg.model.backbone.with_cp = with_cp
        part_cfg = cfg.model.backbone if args.backbone_only else cfg.model
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'instseg')):
            model = MODELS.build(part_cfg).train()
        run = model if args.backbone_only else _TensorMode(model)
        results[with_cp] = saved_activation_bytes(run, inputs)
    part = 'backbone' if args.backbone_only else 'backbone + neck + RPN head'
    print(f'{args.config}: {part}, input ({args.batch}, 3, {args.shape[0]}, {args.shape[1]})')
    for with_cp, size in results.items():
        print(f'  with_cp={with_cp}: {size / 2**20:.1f} MiB saved for backward')
    print(f'  with_cp saves {1 - results[True] / results[False]:.0%}')
    return results


class _TensorMode(nn.Module):
    """A detector's ``mode='tensor'`` forward as a plain module call."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, inputs: torch.Tensor):
        return self.detector(inputs, mode='tensor')


if __name__ == '__main__':
    main()
