"""Two-stage detectors: backbone -> neck -> RPN -> RoI heads."""

from __future__ import annotations

import copy

from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from torch import Tensor

from instseg.registry import MODELS
from instseg.structures.det_data_sample import SampleList


@MODELS.register_module()
class TwoStageDetector(BaseModel):
    """Backbone, optional neck, RPN and RoI heads, in mmdetection's layout and config keys.

    ``train_cfg`` and ``test_cfg`` hold ``rpn``, ``rpn_proposal`` (proposals used to train the
    second stage) and ``rcnn`` sections, which are handed to the heads. The neck's ``in_channels``
    defaults to the backbone's published ``out_channels``.
    """

    def __init__(
        self,
        backbone: dict,
        rpn_head: dict,
        roi_head: dict,
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
        rpn_head = copy.deepcopy(rpn_head)
        rpn_head.update(
            train_cfg=train_cfg['rpn'] if train_cfg is not None else None,
            test_cfg=test_cfg['rpn'] if test_cfg is not None else None,
        )
        self.rpn_head = MODELS.build(rpn_head)
        roi_head = copy.deepcopy(roi_head)
        roi_head.update(
            train_cfg=train_cfg['rcnn'] if train_cfg is not None else None,
            test_cfg=test_cfg['rcnn'] if test_cfg is not None else None,
        )
        self.roi_head = MODELS.build(roi_head)

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
        """Images and ground truth -> named losses (RPN and RoI heads)."""
        x = self.extract_feat(inputs)
        losses, proposals = self.rpn_head.loss_and_predict(
            x, data_samples, self.train_cfg.get('rpn_proposal', self.test_cfg['rpn'])
        )
        losses.update(self.roi_head.loss(x, proposals, data_samples))
        return losses

    def predict(self, inputs: Tensor, data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Images -> the same data samples with ``pred_instances`` (original image size)."""
        x = self.extract_feat(inputs)
        proposals = self.rpn_head.predict(x, data_samples)
        results = self.roi_head.predict(x, proposals, data_samples, rescale=rescale)
        for sample, result in zip(data_samples, results, strict=True):
            sample.pred_instances = result
        return data_samples

    def _forward(self, inputs: Tensor, data_samples: SampleList | None = None) -> tuple:
        """Raw outputs for tracing and FLOP counting: neck maps and RPN maps (RoI heads excluded:
        their cost depends on the number of proposals)."""
        x = self.extract_feat(inputs)
        rpn_scores, rpn_deltas = self.rpn_head(x)
        return tuple(x), rpn_scores, rpn_deltas
