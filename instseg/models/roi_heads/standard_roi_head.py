"""Second stage of Mask R-CNN: classify and refine proposals, then predict a mask per detection."""

from __future__ import annotations

from mmengine.config import ConfigDict
from torch import Tensor

from instseg.models.roi_heads.base_roi_head import (
    BaseRoIHead,
    check_num_classes,
)
from instseg.models.roi_heads.bbox_heads import ConvFCBBoxHead
from instseg.models.task_modules import SamplingResult
from instseg.registry import MODELS, TASK_UTILS
from instseg.structures import BaseInstanceMasks
from instseg.structures.bbox import bbox2roi
from instseg.structures.det_data_sample import SampleList


@MODELS.register_module()
class StandardRoIHead(BaseRoIHead):
    """Box branch (RoIAlign 7x7 -> bbox head) and mask branch (RoIAlign 14x14 -> mask head).

    Each branch is usable alone: ``predict_bbox`` turns proposals into detections and
    ``predict_mask`` adds masks to any given detections.
    """

    def __init__(
        self,
        bbox_roi_extractor: dict,
        bbox_head: dict,
        mask_roi_extractor: dict | None = None,
        mask_head: dict | None = None,
        share_roi_extractor: bool = False,
        train_cfg: ConfigDict | dict | None = None,
        test_cfg: ConfigDict | dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg)
        self.bbox_roi_extractor = MODELS.build(bbox_roi_extractor)
        self.bbox_head = MODELS.build(bbox_head)
        self.mask_head = MODELS.build(mask_head) if mask_head is not None else None
        if self.mask_head is not None:
            self.share_roi_extractor = share_roi_extractor or mask_roi_extractor is None
            if not self.share_roi_extractor:
                self.mask_roi_extractor = MODELS.build(mask_roi_extractor)
        check_num_classes(self.bbox_head, self.mask_head)
        if train_cfg is not None:
            self.bbox_assigner = TASK_UTILS.build(train_cfg['assigner'])
            self.bbox_sampler = TASK_UTILS.build(train_cfg['sampler'])

    # ----------------------------------------------------------------------------- training
    def loss_by_proposals(
        self, x: tuple[Tensor, ...], proposals: list[Tensor], batch_data_samples: SampleList
    ) -> dict[str, Tensor]:
        """Box and mask losses for one batch from proposal ``bboxes`` [Ni, 4] per image."""
        sampling_results = self.assign_and_sample(
            proposals, batch_data_samples, self.bbox_assigner, self.bbox_sampler
        )
        losses = self.bbox_loss(x, sampling_results)
        if self.with_mask:
            gt_masks = [sample.gt_instances.masks for sample in batch_data_samples]
            losses['loss_mask'] = self.mask_loss(x, sampling_results, gt_masks)
        return losses

    def bbox_forward(self, x: tuple[Tensor, ...], rois: Tensor) -> tuple[Tensor, Tensor]:
        """RoIs [K, 5] -> (cls_score [K, C + 1], bbox_pred [K, 4C])."""
        feats = self.bbox_roi_extractor(x, rois)
        return self.bbox_head(feats)

    def bbox_loss(
        self, x: tuple[Tensor, ...], sampling_results: list[SamplingResult]
    ) -> dict[str, Tensor]:
        """``loss_cls``, ``loss_bbox`` and ``acc`` of the sampled RoIs."""
        rois = bbox2roi([res.priors for res in sampling_results])
        cls_score, bbox_pred = self.bbox_forward(x, rois)
        return self.bbox_head.loss(cls_score, bbox_pred, rois, sampling_results)

    def mask_forward(self, x: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        """RoIs [K, 5] -> mask logits [K, n, 28, 28]."""
        return self.mask_head(self.mask_roi_feats(x, rois))

    def mask_roi_feats(self, x: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        """RoIs [K, 5] -> pooled mask-branch features [K, C, 14, 14]."""
        extractor = self.bbox_roi_extractor if self.share_roi_extractor else self.mask_roi_extractor
        return extractor(x, rois)

    def mask_loss(
        self,
        x: tuple[Tensor, ...],
        sampling_results: list[SamplingResult],
        gt_masks: list[BaseInstanceMasks],
    ) -> Tensor:
        """Mask loss of the positive RoIs, against ``gt_masks`` (one container per image)."""
        pos_rois = bbox2roi([res.pos_priors for res in sampling_results])
        mask_preds = self.mask_forward(x, pos_rois.to(x[0].device))
        return self.mask_head.loss(mask_preds, sampling_results, gt_masks)

    # ----------------------------------------------------------------------------- inference
    def score_rois(
        self, x: tuple[Tensor, ...], rois: Tensor, counts: list[int], metas: list[dict]
    ) -> tuple[ConvFCBBoxHead, Tensor, Tensor, Tensor]:
        """RoIs [K, 5] -> the box head, the same RoIs, class scores and box deltas."""
        cls_score, bbox_pred = self.bbox_forward(x, rois)
        return self.bbox_head, rois, cls_score, bbox_pred

    def predict_mask_probs(self, x: tuple[Tensor, ...], rois: Tensor, labels: Tensor) -> Tensor:
        """RoIs [K, 5] and their labels [K] -> fp32 mask probabilities [K, s, s] of those labels."""
        if rois.size(0) == 0:
            return rois.new_zeros((0, self.mask_head.mask_size, self.mask_head.mask_size))
        return self.mask_head.predict_probs(self.mask_roi_feats(x, rois), labels)
