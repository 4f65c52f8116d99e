"""Single-stage instance segmenters: backbone -> neck -> dense box head -> mask head."""

from __future__ import annotations

from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from torch import Tensor

from instseg.models.detectors.base import (
    build_backbone_and_neck,
    build_data_preprocessor,
    build_head,
    extract_features,
    run_mode,
)
from instseg.registry import MODELS
from instseg.structures.det_data_sample import SampleList


@MODELS.register_module()
class SingleStageInstanceSegmentor(BaseModel):
    """Backbone, optional neck, a dense ``bbox_head`` and a ``mask_head``, in mmdetection's layout.

    There are no proposals: ``bbox_head.loss`` returns its losses and, per image, what the mask
    head needs of the positive anchors (an ``InstanceData``); ``bbox_head.predict`` returns
    detections in network-input pixels that ``mask_head.predict`` completes with masks and
    moves to the original image. ``train_cfg`` and ``test_cfg`` are single dicts shared by both
    heads. The neck's ``in_channels`` defaults to the backbone's published ``out_channels``.
    """

    def __init__(
        self,
        backbone: dict,
        bbox_head: dict,
        mask_head: dict,
        neck: dict | None = None,
        train_cfg: ConfigDict | dict | None = None,
        test_cfg: ConfigDict | dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(
            data_preprocessor=build_data_preprocessor(data_preprocessor), init_cfg=init_cfg
        )
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.backbone, self.neck = build_backbone_and_neck(backbone, neck)
        self.bbox_head = build_head(bbox_head, train_cfg, test_cfg)
        self.mask_head = build_head(mask_head, train_cfg, test_cfg)
        if self.bbox_head.num_classes != self.mask_head.num_classes:
            raise ValueError(
                f'bbox_head.num_classes ({self.bbox_head.num_classes}) and mask_head.num_classes '
                f'({self.mask_head.num_classes}) must agree'
            )

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """Images [B, 3, H, W] -> multi-level features, finest first."""
        return extract_features(self, inputs)

    def forward(self, inputs: Tensor, data_samples: SampleList | None = None, mode: str = 'tensor'):
        """mmengine entry point: ``mode`` is 'loss', 'predict' or 'tensor'."""
        return run_mode(self, inputs, data_samples, mode)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Images and ground truth -> named losses (box head and mask head)."""
        x = self.extract_feat(inputs)
        losses, positive_infos = self.bbox_head.loss(x, data_samples)
        losses.update(self.mask_head.loss(x, data_samples, positive_infos))
        return losses

    def predict(self, inputs: Tensor, data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Images -> the same data samples with ``pred_instances`` (``bboxes``, ``scores``,
        ``labels``, ``masks``; original image size with ``rescale``)."""
        x = self.extract_feat(inputs)
        detections = self.bbox_head.predict(x, data_samples)
        results = self.mask_head.predict(x, detections, data_samples, rescale=rescale)
        for sample, result in zip(data_samples, results, strict=True):
            sample.pred_instances = result
        return data_samples

    def _forward(self, inputs: Tensor, data_samples: SampleList | None = None) -> tuple:
        """Raw outputs for tracing and FLOP counting: the box head's per-level maps and the
        prototypes."""
        x = self.extract_feat(inputs)
        prototypes, _ = self.mask_head(x)
        return (*self.bbox_head(x), prototypes)
