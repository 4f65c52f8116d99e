"""Second stage of Mask R-CNN: classify and refine proposals, then predict a mask per detection."""

from __future__ import annotations

import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from instseg.models.roi_heads.mask_heads import paste_masks, paste_masks_compact
from instseg.registry import MODELS, TASK_UTILS
from instseg.structures.bbox import bbox2roi, scale_boxes
from instseg.structures.det_data_sample import SampleList


def check_num_classes(bbox_head: BaseModule, mask_head: BaseModule | None) -> None:
    """Raise when the box and mask heads disagree on ``num_classes`` (a common config slip)."""
    if mask_head is not None and not mask_head.class_agnostic:
        if mask_head.num_classes != bbox_head.num_classes:
            raise ValueError(
                f'roi_head.bbox_head.num_classes={bbox_head.num_classes} but '
                f'roi_head.mask_head.num_classes={mask_head.num_classes}; '
                'set both to the number of '
                'classes in your dataset'
            )


@MODELS.register_module()
class StandardRoIHead(BaseModule):
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
        super().__init__(init_cfg=init_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
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

    @property
    def with_mask(self) -> bool:
        return self.mask_head is not None

    # ----------------------------------------------------------------------------- training
    def assign_and_sample(
        self, proposals: list[Tensor], batch_data_samples: SampleList, assigner, sampler
    ) -> list:
        """Match proposals [Ni, 4] to ground truth and sample RoIs for each image."""
        results = []
        for boxes, sample in zip(proposals, batch_data_samples, strict=True):
            gt = sample.gt_instances
            ignored = sample.get('ignored_instances', None)
            ignore_boxes = ignored.bboxes if ignored is not None and len(ignored) > 0 else None
            boxes = boxes.detach()
            assign = assigner.assign(boxes, gt.bboxes, gt.labels, ignore_boxes)
            results.append(sampler.sample(assign, boxes, gt.bboxes, gt.labels))
        return results

    def loss(
        self,
        x: tuple[Tensor, ...],
        rpn_results_list: list[InstanceData],
        batch_data_samples: SampleList,
    ) -> dict[str, Tensor]:
        """Box and mask losses for one batch. ``rpn_results_list`` holds ``bboxes`` per image."""
        proposals = [res.bboxes for res in rpn_results_list]
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

    def bbox_loss(self, x: tuple[Tensor, ...], sampling_results: list) -> dict[str, Tensor]:
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

    def mask_loss(self, x: tuple[Tensor, ...], sampling_results: list, gt_masks: list) -> Tensor:
        pos_rois = bbox2roi([res.pos_priors for res in sampling_results])
        mask_preds = self.mask_forward(x, pos_rois.to(x[0].device))
        return self.mask_head.loss(mask_preds, sampling_results, gt_masks)

    # ----------------------------------------------------------------------------- inference
    def predict(
        self,
        x: tuple[Tensor, ...],
        rpn_results_list: list[InstanceData],
        batch_data_samples: SampleList,
        rescale: bool = True,
    ) -> list[InstanceData]:
        """Detections per image: ``bboxes``, ``scores``, ``labels`` and (with a mask head)
        ``masks``."""
        metas = [sample.metainfo for sample in batch_data_samples]
        results = self.predict_bbox(x, metas, [r.bboxes for r in rpn_results_list], rescale)
        if self.with_mask:
            results = self.predict_mask(x, metas, results, rescale)
        return results

    def predict_bbox(
        self,
        x: tuple[Tensor, ...],
        metas: list[dict],
        proposals: list[Tensor],
        rescale: bool = True,
    ) -> list[InstanceData]:
        rois = bbox2roi(proposals)
        if rois.size(0) == 0:
            return [_empty_detections(rois.device) for _ in metas]
        cls_score, bbox_pred = self.bbox_forward(x, rois)
        counts = [len(p) for p in proposals]
        return [
            self.bbox_head.predict_by_feat(r, c, b, meta, self.test_cfg, rescale)
            for r, c, b, meta in zip(
                rois.split(counts),
                cls_score.split(counts),
                bbox_pred.split(counts),
                metas,
                strict=True,
            )
        ]

    def predict_mask(
        self,
        x: tuple[Tensor, ...],
        metas: list[dict],
        results: list[InstanceData],
        rescale: bool = True,
    ) -> list[InstanceData]:
        """Add ``masks`` at the original size when ``rescale`` to detections.

        ``test_cfg.mask_format`` picks their form: ``'compact'`` (default) a
        :class:`~instseg.structures.PredictedMasks` holding each mask inside its box window,
        ``'tensor'`` a dense BoolTensor[K, H, W].
        """
        boxes = []
        for res, meta in zip(results, metas, strict=True):
            b = res.bboxes
            if rescale and 'scale_factor' in meta:
                b = scale_boxes(b, meta['scale_factor'])
            boxes.append(b)
        rois = bbox2roi(boxes)
        mask_probs = self.predict_mask_probs(x, rois, torch.cat([r.labels for r in results]))
        threshold = self.test_cfg.get('mask_thr_binary', 0.5)
        paste_mode = self.test_cfg.get('mask_paste', 'grid_sample')
        paste = _PASTES.get(self.test_cfg.get('mask_format', 'compact'))
        if paste is None:
            raise ValueError(
                f'test_cfg.rcnn.mask_format must be one of {sorted(_PASTES)}, '
                f'got {self.test_cfg.get("mask_format")!r}'
            )
        out = []
        for res, meta, probs in zip(
            results, metas, mask_probs.split([len(r) for r in results]), strict=True
        ):
            shape = meta['ori_shape'] if rescale else meta['img_shape']
            res = res.clone()
            res.masks = paste(probs, res.bboxes, shape, threshold, paste_mode)
            out.append(res)
        return out

    def predict_mask_probs(self, x: tuple[Tensor, ...], rois: Tensor, labels: Tensor) -> Tensor:
        """RoIs [K, 5] and their labels [K] -> fp32 mask probabilities [K, s, s] of those labels."""
        if rois.size(0) == 0:
            return rois.new_zeros((0, self.mask_head.mask_size, self.mask_head.mask_size))
        return self.mask_head.predict_probs(self.mask_roi_feats(x, rois), labels)


# test_cfg.rcnn.mask_format -> how predicted masks are pasted into the image
_PASTES = {'compact': paste_masks_compact, 'tensor': paste_masks}


def _empty_detections(device: torch.device) -> InstanceData:
    return InstanceData(
        bboxes=torch.zeros((0, 4), device=device),
        scores=torch.zeros((0,), device=device),
        labels=torch.zeros((0,), dtype=torch.long, device=device),
    )
