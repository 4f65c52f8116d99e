"""Single-stage instance segmenters: backbone -> neck -> dense box head -> mask head."""

from __future__ import annotations

import copy

from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from torch import Tensor

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
        if isinstance(data_preprocessor, dict):
            # Built from instseg's registry so it resolves without a default scope being set.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.backbone = MODELS.build(backbone)
        self.neck = None
        if neck is not None:
            neck = copy.deepcopy(neck)
            if neck.get('in_channels') is None:
                neck['in_channels'] = list(self.backbone.out_channels)
            self.neck = MODELS.build(neck)
        bbox_head = copy.deepcopy(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        mask_head = copy.deepcopy(mask_head)
        mask_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.mask_head = MODELS.build(mask_head)
        if self.bbox_head.num_classes != self.mask_head.num_classes:
            raise ValueError(
                f'bbox_head.num_classes ({self.bbox_head.num_classes}) and mask_head.num_classes '
                f'({self.mask_head.num_classes}) must agree'
            )

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """Images [B, 3, H, W] -> multi-level features, finest first."""
        x = self.backbone(inputs)
        return self.neck(x) if self.neck is not None else x

    def forward(self, inputs: Tensor, data_samples: SampleList | None = None, mode: str = 'tensor'):
        """mmengine entry point: ``mode`` is 'loss', 'predict' or 'tensor'."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"Invalid mode {mode!r}; use 'loss', 'predict' or 'tensor'")

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
