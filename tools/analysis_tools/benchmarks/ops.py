"""Time each fast path of ``instseg.ops`` next to its reference kernel, in one process.

* ``roi_align``: forward and backward of ``--rois`` RoIs (7x7, aligned, adaptive sampling) on a
  2x256x``--feat-size`` map: ``sparse_roi_align_cpu`` against ``torchvision.ops.roi_align``.
* ``conv_transpose``: the mask head's 2x2 stride-2 up-sampling of ``--masks`` RoIs
  [K, 256, 14, 14], forward (inference) and forward + backward (training):
  ``conv_transpose2d_as_matmul`` against ``torch.nn.functional.conv_transpose2d``.

The two methods alternate, each call timed on its own, and the median of ``--repeats`` calls
after ``--warmup`` untimed ones is reported; the results are checked to agree. Run it with the
threads you care about (``--threads``); on a shared machine prefer the ratio over the times.

Example (the figures in the README's Speed section):
    python tools/analysis_tools/benchmarks/ops.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align as tv_roi_align

from instseg.ops import conv_transpose2d_as_matmul, sparse_roi_align_cpu


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of this benchmark."""
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('--rois', type=int, default=773, help='RoIs for roi_align')
    parser.add_argument('--feat-size', type=int, default=128, help='feature map side (px)')
    parser.add_argument('--masks', type=int, default=100, help='RoIs for the mask up-sampling')
    parser.add_argument('--repeats', type=int, default=10, help='timed calls per method')
    parser.add_argument('--warmup', type=int, default=2, help='untimed calls per method first')
    parser.add_argument('--json', help='also write the figures to this JSON file')


def _alternate(
    methods: dict[str, Callable[[], torch.Tensor]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds of each method, the methods called in turn."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for i in range(warmup + repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _roi_align_case(args: argparse.Namespace) -> dict:
    g = torch.Generator().manual_seed(0)
    size = args.feat_size
    feat = torch.randn(2, 256, size, size, generator=g, requires_grad=True)
    image = size * 4.0  # a stride-4 level
    xy = torch.rand(args.rois, 2, generator=g) * image * 0.8
    wh = 16 + torch.rand(args.rois, 2, generator=g) * image * 0.2
    batch = torch.randint(0, 2, (args.rois, 1), generator=g).float()
    rois = torch.cat([batch, xy, xy + wh], dim=1)
    grad = torch.randn(args.rois, 256, 7, 7, generator=g)

    def step(kernel: Callable) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            out = kernel(feat, rois, (7, 7), 0.25, 0, True)
            return torch.autograd.grad(out, feat, grad)[0]

        return fn

    fast, ref = step(sparse_roi_align_cpu), step(tv_roi_align)
    torch.testing.assert_close(fast(), ref(), atol=1e-3, rtol=1e-3)
    seconds = _alternate(dict(fast=fast, reference=ref), args.repeats, args.warmup)
    shape = f'{args.rois} RoIs, 2x256x{size}x{size}'
    return dict(op='roi_align', task='forward+backward', shape=shape, **seconds)


def _conv_transpose_cases(args: argparse.Namespace) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.masks, 256, 14, 14, generator=g, requires_grad=True)
    layer = torch.nn.ConvTranspose2d(256, 256, 2, stride=2)
    grad = torch.randn(args.masks, 256, 28, 28, generator=g)
    rows = []
    for task in ('forward', 'forward+backward'):

        def step(kernel: Callable, task: str = task) -> Callable[[], torch.Tensor]:
            def fn() -> torch.Tensor:
                if task == 'forward':
                    with torch.no_grad():
                        return kernel(x, layer.weight, layer.bias)
                return torch.autograd.grad(kernel(x, layer.weight, layer.bias), x, grad)[0]

            return fn

        fast = step(conv_transpose2d_as_matmul)
        ref = step(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2))
        torch.testing.assert_close(fast(), ref(), atol=1e-3, rtol=1e-3)
        seconds = _alternate(dict(fast=fast, reference=ref), args.repeats, args.warmup)
        shape = f'{args.masks} RoIs, 256x14x14 -> 28x28'
        rows.append(dict(op='conv_transpose2d', task=task, shape=shape, **seconds))
    return rows


def run(args: argparse.Namespace) -> dict:
    """Time every fast path against its reference; print a table and return the figures."""
    torch.set_num_threads(args.threads)
    rows = [_roi_align_case(args), *_conv_transpose_cases(args)]
    for row in rows:
        row['reference / fast'] = round(row['reference'] / row['fast'], 2)
    report = dict(device='cpu', threads=args.threads, torch=torch.__version__, rows=rows)
    print(f'instseg.ops fast paths against their references: CPU, {args.threads} threads')
    print(f'{"op":<18}{"task":<18}{"shape":<32}{"fast (s)":>10}{"ref (s)":>10}{"ref/fast":>10}')
    for row in rows:
        print(
            f'{row["op"]:<18}{row["task"]:<18}{row["shape"]:<32}{row["fast"]:>10.4f}'
            f'{row["reference"]:>10.4f}{row["reference / fast"]:>10.2f}'
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    main()
