"""The detection visualizer: draws a data sample's annotations and predictions."""

from __future__ import annotations

import os
import os.path as osp

import cv2
import numpy as np
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer

from instseg.registry import VISUALIZERS
from instseg.visualization.draw import class_palette, draw_instances

Color = tuple[int, int, int]


@VISUALIZERS.register_module()
class DetLocalVisualizer(Visualizer):
    """mmengine's Visualizer that draws instance masks, boxes, class names and scores.

    :meth:`add_datasample` draws ``gt_instances`` and ``pred_instances`` (scores above
    ``pred_score_thr``) of a :class:`~instseg.structures.DetDataSample`, side by side when both
    are drawn (ground truth left), and writes the result to ``out_file`` or to every vis backend
    (``LocalVisBackend``: ``<save_dir>/vis_data/vis_image``; ``TensorboardVisBackend``: images
    tab). Class names and colours come from ``dataset_meta`` (``classes``, ``palette``).

    Args:
        name: instance name for mmengine's ``get_instance``. Defaults to 'visualizer'.
        image: RGB image to start with. Defaults to None.
        vis_backends: vis backend configs. Defaults to None.
        save_dir: directory the backends write under. Defaults to None.
        bbox_color: one RGB box colour for every instance. Defaults to None (class colour).
        text_color: RGB label text colour. Defaults to None (black or white by contrast).
        mask_color: one RGB mask colour for every instance. Defaults to None (class colour).
        line_width: box and contour thickness. Defaults to None (grows with the image size).
        alpha: mask opacity. Defaults to 0.5.
    """

    def __init__(
        self,
        name: str = 'visualizer',
        image: np.ndarray | None = None,
        vis_backends: list[dict] | None = None,
        save_dir: str | None = None,
        bbox_color: Color | None = None,
        text_color: Color | None = None,
        mask_color: Color | None = None,
        line_width: int | None = None,
        alpha: float = 0.5,
    ) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        self.bbox_color = bbox_color
        self.text_color = text_color
        self.mask_color = mask_color
        self.line_width = line_width
        self.alpha = alpha
        self._drawn: np.ndarray | None = None

    def draw_instances(
        self, image: np.ndarray, instances: InstanceData, with_scores: bool = True
    ) -> np.ndarray:
        """Draw one ``InstanceData`` (``bboxes``, ``labels``, optional ``scores``, ``masks``)."""
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        labels = instances.get('labels')
        num_classes = len(classes or ())
        if labels is not None and len(labels):
            num_classes = max(num_classes, int(labels.max()) + 1)
        return draw_instances(
            image,
            bboxes=instances.get('bboxes'),
            labels=labels,
            scores=instances.get('scores') if with_scores else None,
            masks=instances.get('masks'),
            classes=classes,
            palette=class_palette(meta, num_classes),
            bbox_color=self.bbox_color,
            mask_color=self.mask_color,
            text_color=self.text_color,
            alpha=self.alpha,
            line_width=self.line_width,
        )

    def add_datasample(
        self,
        name: str,
        image: np.ndarray,
        data_sample=None,
        draw_gt: bool = True,
        draw_pred: bool = True,
        show: bool = False,
        wait_time: float = 0,
        out_file: str | None = None,
        pred_score_thr: float = 0.3,
        step: int = 0,
    ) -> None:
        """Draw ``data_sample`` on ``image`` (RGB uint8 [H, W, 3]) and save or log the result.

        The drawn image is [H, W, 3], or [H, 2W, 3] when both ground truth and predictions are
        drawn. ``out_file`` gets it as an image file (RGB converted to BGR for OpenCV); without
        it the image goes to the vis backends under ``name`` at ``step``.
        """
        image = image.clip(0, 255).astype(np.uint8)
        panels = []
        if data_sample is not None:
            if draw_gt and 'gt_instances' in data_sample:
                panels.append(self.draw_instances(image, data_sample.gt_instances, False))
            if draw_pred and 'pred_instances' in data_sample:
                pred = data_sample.pred_instances
                pred = pred[pred.scores > pred_score_thr] if 'scores' in pred else pred
                panels.append(self.draw_instances(image, pred))
        drawn = np.concatenate(panels, axis=1) if panels else image
        self._drawn = drawn
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
            if not cv2.imwrite(out_file, np.ascontiguousarray(drawn[..., ::-1])):
                raise OSError(f'DetLocalVisualizer: could not write {out_file}')
        else:
            self.add_image(name, drawn, step)

    def get_image(self) -> np.ndarray:
        """The image last drawn by :meth:`add_datasample` (RGB), else mmengine's canvas."""
        if self._drawn is not None:
            return self._drawn
        return super().get_image()
