"""What the RoI heads share: proposal sampling, the inference flow and per-image detections."""

from __future__ import annotations

from abc import abstractmethod

import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from instseg.models.roi_heads.bbox_heads import ConvFCBBoxHead
from instseg.models.roi_heads.mask_heads import FCNMaskHead, paste_masks, paste_masks_compact
from instseg.models.task_modules import (
    MaxIoUAssigner,
    PseudoSampler,
    RandomSampler,
    SamplingResult,
)
from instseg.structures.bbox import bbox2roi, scale_boxes
from instseg.structures.det_data_sample import SampleList


def check_num_classes(bbox_head: ConvFCBBoxHead, mask_head: FCNMaskHead | None) -> None:
    """Raise when the box and mask heads disagree on ``num_classes`` (a common config slip)."""
    if mask_head is not None and not mask_head.class_agnostic:
        if mask_head.num_classes != bbox_head.num_classes:
            raise ValueError(
                f'roi_head.bbox_head.num_classes={bbox_head.num_classes} but '
                f'roi_head.mask_head.num_classes={mask_head.num_classes}; '
                'set both to the number of classes in your dataset'
            )


def empty_detections(device: torch.device) -> InstanceData:
    """Detections of an image without proposals: empty ``bboxes``, ``scores`` and ``labels``."""
    return InstanceData(
        bboxes=torch.zeros((0, 4), device=device),
        scores=torch.zeros((0,), device=device),
        labels=torch.zeros((0,), dtype=torch.long, device=device),
    )


# test_cfg.rcnn.mask_format -> how predicted masks are pasted into the image
_PASTES = {'compact': paste_masks_compact, 'tensor': paste_masks}


class BaseRoIHead(BaseModule):
    """The second stage's shared flow; subclasses build the branches.

    A subclass sets ``bbox_head``/``mask_head`` (``mask_head=None`` for boxes only) and
    implements ``loss_by_proposals``, ``score_rois`` (RoIs -> class scores and deltas) and
    ``predict_mask_probs`` (detections -> mask probabilities of their labels); this class samples
    the proposals for training, decodes the scored RoIs into detections and turns those into
    masks pasted at the image size for inference.
    """

    def __init__(
        self,
        train_cfg: ConfigDict | dict | list | None = None,
        test_cfg: ConfigDict | dict | None = None,
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    @property
    def with_mask(self) -> bool:
        return self.mask_head is not None

    # ----------------------------------------------------------------------------- training
    def assign_and_sample(
        self,
        proposals: list[Tensor],
        batch_data_samples: SampleList,
        assigner: MaxIoUAssigner,
        sampler: RandomSampler | PseudoSampler,
    ) -> list[SamplingResult]:
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
        """Named losses of one batch; ``rpn_results_list`` holds ``bboxes`` [Ni, 4] per image."""
        proposals = [res.bboxes for res in rpn_results_list]
        return self.loss_by_proposals(x, proposals, batch_data_samples)

    @abstractmethod
    def loss_by_proposals(
        self, x: tuple[Tensor, ...], proposals: list[Tensor], batch_data_samples: SampleList
    ) -> dict[str, Tensor]:
        """Named losses from proposal boxes [Ni, 4] per image and the ground truth."""

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
        """Proposals [Ni, 4] per image -> detections (``bboxes``, ``scores``, ``labels``)."""
        rois = bbox2roi(proposals)
        if rois.size(0) == 0:
            return [empty_detections(rois.device) for _ in metas]
        counts = [len(p) for p in proposals]
        bbox_head, rois, cls_score, bbox_pred = self.score_rois(x, rois, counts, metas)
        return self.detections_per_image(
            bbox_head, rois, cls_score, bbox_pred, counts, metas, rescale
        )

    @abstractmethod
    def score_rois(
        self, x: tuple[Tensor, ...], rois: Tensor, counts: list[int], metas: list[dict]
    ) -> tuple[ConvFCBBoxHead, Tensor, Tensor, Tensor]:
        """RoIs [K, 5] (``counts[i]`` of image ``i`` in turn) -> the box head that decodes them,
        the RoIs it decodes, class scores [K, C + 1] and box deltas [K, 4 or 4C]."""

    @abstractmethod
    def predict_mask_probs(self, x: tuple[Tensor, ...], rois: Tensor, labels: Tensor) -> Tensor:
        """RoIs [K, 5] and their labels [K] -> fp32 mask probabilities [K, s, s] of those labels."""

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
            bboxes = res.bboxes
            if rescale and 'scale_factor' in meta:
                bboxes = scale_boxes(bboxes, meta['scale_factor'])
            boxes.append(bboxes)
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

    def detections_per_image(
        self,
        bbox_head: ConvFCBBoxHead,
        rois: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        counts: list[int],
        metas: list[dict],
        rescale: bool,
    ) -> list[InstanceData]:
        """``bbox_head``'s post-processing (decode, score threshold, NMS) image by image: rois
        [K, 5], cls_score [K, C + 1] and bbox_pred [K, 4 or 4C] hold ``counts[i]`` rows of
        image ``i`` in turn."""
        return [
            bbox_head.predict_by_feat(
                image_rois, image_scores, image_deltas, meta, self.test_cfg, rescale
            )
            for image_rois, image_scores, image_deltas, meta in zip(
                rois.split(counts),
                cls_score.split(counts),
                bbox_pred.split(counts),
                metas,
                strict=True,
            )
        ]
