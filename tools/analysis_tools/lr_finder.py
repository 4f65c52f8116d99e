"""LR range test: train a config's model briefly while raising the lr exponentially, plot the loss.

Writes nothing but the plot: no checkpoints, no logs, no work dir.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

EXAMPLES = """example:
  python tools/analysis_tools/lr_finder.py configs/demo/mask_rcnn_r18_fpn_demo.py \\
      --start 1e-6 --end 1 --iters 100 --out lr.png

The model, its initial weights (init_cfg, load_from), the training data and the optimizer (with
its per-parameter settings and clip_grad) come from the config; the lr of every parameter group
is set to the swept lr times the group's share of the config's lr, iteration by iteration from
--start to --end (the config's param_scheduler is not used). The sweep stops early once the
smoothed loss exceeds --diverge times its best value, or the loss is not finite. It prints two
suggestions, the lr of the steepest descent of the smoothed loss and the lr of its minimum / 10,
and the config line for the first.
"""
SMOOTHING = 0.9  # weight of the running average in the exponentially smoothed loss
PNG_SOFTWARE = 'instseg lr_finder'  # marks the plots this tool may overwrite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config file path')
    parser.add_argument('--start', type=float, default=1e-6, help='first lr (default 1e-6)')
    parser.add_argument('--end', type=float, default=1.0, help='last lr (default 1)')
    parser.add_argument('--iters', type=int, default=100, help='training iterations (default 100)')
    parser.add_argument('--diverge', type=float, default=4.0, help='stop at this x best loss')
    parser.add_argument('--out', default='lr.png', help='the plot (default lr.png)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    args = parser.parse_args(argv)
    if not 0 < args.start < args.end:
        parser.error(f'need 0 < --start < --end, got --start {args.start} --end {args.end}')
    if args.iters < 5:
        parser.error(f'--iters must be >= 5 to fit a suggestion, got {args.iters}')
    if args.diverge <= 1:
        parser.error(f'--diverge must be > 1, got {args.diverge}')
    _check_writable(Path(args.out))
    return args


def _check_writable(out: Path) -> None:
    """Refuse to overwrite a file this tool did not write, before any training starts."""
    if out.suffix.lower() != '.png':
        raise SystemExit(f'--out {out}: the plot is a PNG; name it *.png')
    if out.exists():
        from PIL import Image

        try:
            software = Image.open(out).text.get('Software', '')
        except Exception:
            software = ''
        if software != PNG_SOFTWARE:
            raise SystemExit(f'--out {out} exists and lr_finder did not write it; not overwriting')


def sweep_lrs(start: float, end: float, iters: int) -> np.ndarray:
    """``iters`` lrs from ``start`` to ``end``, evenly spaced on a log axis."""
    return np.geomspace(start, end, iters)


def smooth(losses: list[float]) -> np.ndarray:
    """Exponential moving average of ``losses`` with bias correction (fastai's)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = SMOOTHING * avg + (1 - SMOOTHING) * loss
        out.append(avg / (1 - SMOOTHING**i))
    return np.array(out)


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict:
    """Suggested lrs: ``steepest`` (the most negative slope of the smoothed loss over log lr,
    before its minimum) and ``min_div10`` (the lr of the smoothed minimum / 10).

    The slope is taken over a window of a tenth of the sweep on either side, so that one noisy
    batch near the start (where the average leans on few losses) cannot win.
    """
    lowest = int(np.argmin(smoothed))
    half = max(1, len(smoothed) // 10)
    centres = np.arange(half, max(half + 1, min(lowest, len(smoothed) - half)))
    centres = centres[centres + half < len(smoothed)]
    if len(centres) == 0:  # the loss only rose: fall back to the start of the sweep
        steepest = float(lrs[0])
    else:
        log_lr = np.log(lrs)
        slopes = (smoothed[centres + half] - smoothed[centres - half]) / (
            log_lr[centres + half] - log_lr[centres - half]
        )
        steepest = float(lrs[centres[int(np.argmin(slopes))]])
    return dict(steepest=steepest, min_div10=float(lrs[lowest] / 10))


def run_sweep(args: argparse.Namespace) -> dict:
    """Train ``args.iters`` steps at rising lr; returns lrs, losses and whether it diverged."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, set_random_seed

    from instseg.apis.inference import load_detector_checkpoint
    from instseg.engine.config import load_config
    from instseg.registry import MODELS

    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'instseg'))
    for key in ('model', 'train_dataloader', 'optim_wrapper'):
        if key not in cfg:
            raise KeyError(f'{args.config} has no {key}; the LR range test trains from it')
    base_lr = cfg.optim_wrapper.get('optimizer', {}).get('lr')
    if not base_lr:
        raise KeyError(f'{args.config}: optim_wrapper.optimizer.lr is not set')
    set_random_seed(cfg.get('randomness', {}).get('seed', 0) or 0)
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = MODELS.build(cfg.model)
    model.init_weights()
    if cfg.get('load_from'):
        load_detector_checkpoint(model, cfg.load_from, args.config)
    model.to(device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # each group keeps its share of the config's lr (paramwise_cfg, layer-wise decay, ...)
    shares = [group['lr'] / base_lr for group in optim_wrapper.optimizer.param_groups]
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=None)
    lrs = sweep_lrs(args.start, args.end, args.iters)
    losses: list[float] = []
    diverged, best, batches = False, math.inf, iter(loader)
    for lr in lrs:
        for group, share in zip(optim_wrapper.optimizer.param_groups, shares, strict=True):
            group['lr'] = float(lr) * share
        try:
            data = next(batches)
        except StopIteration:  # another epoch
            batches = iter(loader)
            data = next(batches)
        loss = float(torch.as_tensor(model.train_step(data, optim_wrapper)['loss']).detach())
        losses.append(loss)
        current = smooth(losses)[-1]
        best = min(best, current)
        if not math.isfinite(loss) or current > args.diverge * best:
            diverged = True
            break
    return dict(lrs=lrs[: len(losses)], losses=losses, diverged=diverged, base_lr=base_lr)


def plot(result: dict, suggestions: dict, out: Path, title: str) -> None:
    """Loss (raw and smoothed) against lr on a log axis, the suggestions marked."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    lrs, losses, smoothed = result['lrs'], np.array(result['losses']), result['smoothed']
    fig, ax = plt.subplots(figsize=(7, 4.5))
    finite = np.isfinite(losses)
    ax.plot(lrs[finite], losses[finite], color='0.75', lw=1, label='loss')
    ax.plot(lrs, smoothed, color='C0', lw=2, label=f'smoothed (EMA {SMOOTHING})')
    for (name, lr), color in zip(suggestions.items(), ('C3', 'C2'), strict=True):
        label = {'steepest': 'steepest descent', 'min_div10': 'minimum / 10'}[name]
        ax.axvline(lr, color=color, ls='--', lw=1.2, label=f'{label}: {lr:.2e}')
    ax.set_xscale('log')
    ax.set_xlabel('learning rate')
    ax.set_ylabel('training loss')
    # the end of a diverged sweep would flatten the rest of the curve
    top = np.nanmax(smoothed[: int(np.argmin(smoothed)) + 1]) * 1.5
    ax.set_ylim(max(0.0, np.nanmin(losses[finite]) * 0.9), max(top, np.nanmin(smoothed) * 2))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which='both')
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={'Software': PNG_SOFTWARE})
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Run the LR range test; returns lrs, losses, smoothed losses and the suggestions."""
    args = parse_args(argv)
    result = run_sweep(args)
    result['smoothed'] = smooth(result['losses'])
    done = len(result['losses'])
    if not np.isfinite(result['smoothed']).any() or done < 3:
        raise SystemExit(f'the loss diverged after {done} iterations; lower --start')
    finite = np.isfinite(result['smoothed'])
    suggestions = suggest(result['lrs'][finite], result['smoothed'][finite])
    result['suggestions'] = suggestions
    stop = 'stopped early: the loss diverged' if result['diverged'] else 'swept the whole range'
    plot(result, suggestions, Path(args.out),
         f'{Path(args.config).name}: {done} iterations, {stop}')  # fmt: skip
    print(f'{done} of {args.iters} iterations, lr {args.start:.1e} -> {result["lrs"][-1]:.1e} '
          f'({stop})')  # fmt: skip
    print(f'suggested lr: {suggestions["steepest"]:.2e} (steepest descent), '
          f'{suggestions["min_div10"]:.2e} (minimum / 10); '
          f'the config has {result["base_lr"]:g}')  # fmt: skip
    print(f'in the config: optim_wrapper = dict(optimizer=dict(lr={suggestions["steepest"]:.2e}))')
    print(f'plot: {args.out}')
    return result


if __name__ == '__main__':
    main()
