"""Writing loss and validation-metric curves as PNG into the work dir when training ends."""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence

import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from instseg.registry import HOOKS
from instseg.visualization.curves import plot_panels


def _scalar(value) -> float | None:
    """``value`` as a float when it is one number (int, float, 0-d or 1-element tensor)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach()) if value.numel() == 1 else None
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class TrainingCurvesHook(Hook):
    """Plot the training losses and the validation metrics of this run when training ends.

    Writes ``<work_dir>/loss_curve.png`` (total loss and each ``loss_*`` per iteration, smoothed
    over ``smooth_window`` iterations) and ``<work_dir>/metric_curve.png`` (each metric key found
    in the validation results, per epoch, or per iteration in iteration-based training). A
    resumed run plots from the point it resumed from; ``tools/analysis_tools/analyze_logs.py``
    plots any logged key from the JSON logs.

    Args:
        metric_keys: validation keys to plot. Defaults to None: every key ending in ``_mAP``
            (``coco/bbox_mAP``, ``coco/segm_mAP``).
        smooth_window: moving-average window for losses. Defaults to 20.
        out_dir: where the PNGs go. Defaults to None (the work dir).
    """

    priority = 'LOW'

    def __init__(
        self,
        metric_keys: Sequence[str] | None = None,
        smooth_window: int = 20,
        out_dir: str | None = None,
    ) -> None:
        self.metric_keys = list(metric_keys) if metric_keys is not None else None
        self.smooth_window = smooth_window
        self.out_dir = out_dir
        self._losses: dict[str, tuple[list[int], list[float]]] = {}
        self._metrics: dict[str, tuple[list[int], list[float]]] = {}

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: dict | None = None, outputs: dict | None = None
    ) -> None:
        """Record ``loss`` and every ``loss_*`` of this iteration."""
        for key, value in (outputs or {}).items():
            number = _scalar(value) if key.startswith('loss') else None
            if number is not None:
                xs, ys = self._losses.setdefault(key, ([], []))
                xs.append(runner.iter + 1)
                ys.append(number)

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        """Record the validation metrics at the current epoch (or iteration)."""
        step = runner.epoch if self._by_epoch(runner) else runner.iter
        for key, value in (metrics or {}).items():
            wanted = key in self.metric_keys if self.metric_keys else key.endswith('_mAP')
            number = _scalar(value) if wanted else None
            if number is not None:
                xs, ys = self._metrics.setdefault(key, ([], []))
                xs.append(step)
                ys.append(number)

    @staticmethod
    def _by_epoch(runner) -> bool:
        return isinstance(runner.train_loop, EpochBasedTrainLoop)

    @master_only
    def after_train(self, runner) -> None:
        """Write the PNGs."""
        out_dir = self.out_dir or runner.work_dir
        written = []
        if self._losses:
            # The total loss gets a panel of its own; its parts share the second one.
            panels = (
                [('loss', 'iter', {'loss': self._losses['loss']})] if 'loss' in self._losses else []
            )
            parts = {k: v for k, v in self._losses.items() if k != 'loss'}
            if parts:
                panels.append(('loss terms', 'iter', parts))
            written.append(
                plot_panels(
                    panels,
                    osp.join(out_dir, 'loss_curve.png'),
                    title='training loss',
                    smooth_window=self.smooth_window,
                )
            )
        if self._metrics:
            x_label = 'epoch' if self._by_epoch(runner) else 'iter'
            written.append(
                plot_panels(
                    [('validation', x_label, self._metrics)],
                    osp.join(out_dir, 'metric_curve.png'),
                    title='validation metrics',
                )
            )
        if written:
            print_log(f'Training curves written to {", ".join(written)}', logger='current')
