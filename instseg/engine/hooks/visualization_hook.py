"""Drawing sample predictions during validation and testing."""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

from mmengine.hooks import Hook

from instseg.registry import HOOKS
from instseg.visualization.draw import read_rgb


def gt_at_original_size(sample):
    """A shallow copy of ``sample`` whose ``gt_instances`` are scaled from the network input back
    to ``ori_shape``, so they line up with predictions drawn on the original image."""
    if 'gt_instances' not in sample or 'scale_factor' not in sample:
        return sample
    gt = sample.gt_instances.new()
    w_scale, h_scale = sample.scale_factor[:2]
    if 'bboxes' in gt:
        scale = gt.bboxes.new_tensor([w_scale, h_scale, w_scale, h_scale])
        gt.bboxes = gt.bboxes / scale
    if 'masks' in gt and hasattr(gt.masks, 'resize'):
        gt.masks = gt.masks.resize(tuple(sample.ori_shape[:2]))
    sample = sample.new()
    sample.gt_instances = gt
    return sample


@HOOKS.register_module()
class DetVisualizationHook(Hook):
    """Draw predictions of validation and test images with the runner's visualizer.

    Validation: with ``draw``, the first image of every ``interval``-th iteration (counted from
    the start of training) goes to the vis backends as ``val_img``, so TensorBoard shows the
    model's progress. Test: with ``draw``, every image is drawn; with ``test_out_dir`` the
    overlays are written as ``<test_out_dir>/<image stem>.png`` (a relative ``test_out_dir``
    lies under ``<work_dir>/<timestamp>/``), otherwise they go to the vis backends.

    Args:
        draw: draw anything at all. Defaults to False.
        interval: validation iterations between drawn images. Defaults to 50.
        score_thr: draw predictions scoring above this. Defaults to 0.3.
        show: also show each image in a window. Defaults to False.
        wait_time: seconds each shown image stays up. Defaults to 0.
        test_out_dir: where test overlays go. Defaults to None (the vis backends).
        backend_args: mmengine file backend arguments for reading images.
    """

    priority = 'NORMAL'

    def __init__(
        self,
        draw: bool = False,
        interval: int = 50,
        score_thr: float = 0.3,
        show: bool = False,
        wait_time: float = 0.0,
        test_out_dir: str | None = None,
        backend_args: dict | None = None,
    ) -> None:
        if interval < 1:
            raise ValueError(f'DetVisualizationHook: interval must be >= 1, got {interval}')
        self.draw = draw
        self.interval = interval
        self.score_thr = score_thr
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.backend_args = backend_args
        self._test_index = 0

    def after_val_iter(
        self, runner, batch_idx: int, data_batch: dict | None = None, outputs: Sequence = ()
    ) -> None:
        """Draw the first sample of every ``interval``-th validation iteration."""
        if not self.draw or not outputs:
            return
        step = runner.iter + batch_idx
        if step % self.interval:
            return
        sample = outputs[0]
        runner.visualizer.add_datasample(
            osp.basename(sample.img_path) if self.show else 'val_img',
            read_rgb(sample.img_path, self.backend_args),
            data_sample=sample,
            show=self.show,
            wait_time=self.wait_time,
            pred_score_thr=self.score_thr,
            step=step,
        )

    def before_test(self, runner) -> None:
        self._test_index = 0

    def after_test_iter(
        self, runner, batch_idx: int, data_batch: dict | None = None, outputs: Sequence = ()
    ) -> None:
        """Draw every test sample to ``test_out_dir`` (or the vis backends)."""
        if not self.draw:
            return
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            os.makedirs(out_dir, exist_ok=True)
        for sample in outputs:
            self._test_index += 1
            sample = gt_at_original_size(sample)
            name = osp.basename(sample.img_path)
            runner.visualizer.add_datasample(
                name,
                read_rgb(sample.img_path, self.backend_args),
                data_sample=sample,
                show=self.show,
                wait_time=self.wait_time,
                pred_score_thr=self.score_thr,
                out_file=(osp.join(out_dir, osp.splitext(name)[0] + '.png') if out_dir else None),
                step=self._test_index,
            )
