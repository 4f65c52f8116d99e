"""Two-stage detectors: backbone -> neck -> RPN -> RoI heads."""

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
        super().__init__(
            data_preprocessor=build_data_preprocessor(data_preprocessor), init_cfg=init_cfg
        )
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.backbone, self.neck = build_backbone_and_neck(backbone, neck)
        sections = [
            (cfg['rpn'], cfg['rcnn']) if cfg is not None else (None, None)
            for cfg in (train_cfg, test_cfg)
        ]
        (rpn_train, rcnn_train), (rpn_test, rcnn_test) = sections
        self.rpn_head = build_head(rpn_head, rpn_train, rpn_test)
        self.roi_head = build_head(roi_head, rcnn_train, rcnn_test)

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """Images [B, 3, H, W] -> multi-level features, finest first."""
        return extract_features(self, inputs)

    def forward(self, inputs: Tensor, data_samples: SampleList | None = None, mode: str = 'tensor'):
        """mmengine entry point: ``mode`` is 'loss', 'predict' or 'tensor'."""
        return run_mode(self, inputs, data_samples, mode)

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
