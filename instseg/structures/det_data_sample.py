"""The per-image container that flows from the pipeline through the model to the metric."""

from __future__ import annotations

from mmengine.structures import BaseDataElement, InstanceData


class DetDataSample(BaseDataElement):
    """Annotations and predictions of one image.

    Fields (each an :class:`~mmengine.structures.InstanceData`):

    - ``gt_instances``: ``bboxes`` Tensor[N, 4] (x1, y1, x2, y2 in pixels of the network input),
      ``labels`` Tensor[N] (0-based class index), ``masks`` a mask container
      (:mod:`instseg.structures.masks`).
    - ``ignored_instances``: crowd regions, same fields; never matched as foreground.
    - ``proposals``: ``bboxes`` and ``scores`` from the RPN.
    - ``pred_instances``: ``bboxes`` Tensor[K, 4], ``scores`` Tensor[K], ``labels`` Tensor[K] and
      ``masks`` BoolTensor[K, H, W] at the original image size.

    Metainfo: ``img_id``, ``img_path``, ``ori_shape`` (h, w), ``img_shape`` (h, w after resize),
    ``pad_shape``, ``scale_factor`` (w_scale, h_scale), ``flip``, ``flip_direction``.
    """

    @property
    def gt_instances(self) -> InstanceData:
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_instances', dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self) -> None:
        del self._gt_instances

    @property
    def ignored_instances(self) -> InstanceData:
        return self._ignored_instances

    @ignored_instances.setter
    def ignored_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_ignored_instances', dtype=InstanceData)

    @ignored_instances.deleter
    def ignored_instances(self) -> None:
        del self._ignored_instances

    @property
    def proposals(self) -> InstanceData:
        return self._proposals

    @proposals.setter
    def proposals(self, value: InstanceData) -> None:
        self.set_field(value, '_proposals', dtype=InstanceData)

    @proposals.deleter
    def proposals(self) -> None:
        del self._proposals

    @property
    def pred_instances(self) -> InstanceData:
        return self._pred_instances

    @pred_instances.setter
    def pred_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_instances', dtype=InstanceData)

    @pred_instances.deleter
    def pred_instances(self) -> None:
        del self._pred_instances


SampleList = list[DetDataSample]
