"""Cascade R-CNN's second stage (Cai and Vasconcelos, 2018): box heads in series, each trained at a
higher IoU threshold on the boxes the previous one regressed, with a mask head per stage."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.config import ConfigDict
from mmengine.model import ModuleList
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


def _per_stage(cfg: dict | list | None, num_stages: int, key: str) -> list:
    """One config per stage: a list is checked for length, a single dict is repeated."""
    if cfg is None:
        return [None] * num_stages
    if isinstance(cfg, (list, tuple)):
        if len(cfg) != num_stages:
            raise ValueError(f'roi_head.{key} has {len(cfg)} entries but num_stages={num_stages}')
        return list(cfg)
    return [cfg] * num_stages


@MODELS.register_module()
class CascadeRoIHead(BaseRoIHead):
    """``num_stages`` box heads in series, each with its own RoI extractor and optional mask head.

    Modules are ``nn.ModuleList``s named as in mmdetection (``bbox_roi_extractor.{i}``,
    ``bbox_head.{i}``, ``mask_roi_extractor.{i}``, ``mask_head.{i}``), so its checkpoints load.
    A single dict for ``bbox_roi_extractor``, ``bbox_head``, ``mask_roi_extractor`` or
    ``mask_head`` is used for every stage; ``mask_roi_extractor=None`` shares the box extractors.

    Training (``train_cfg`` is a list with one ``assigner``/``sampler`` per stage): stage ``i``
    samples RoIs from its proposals plus the ground truth, computes box (and mask) losses named
    ``s{i}.loss_cls``, ``s{i}.loss_bbox``, ``s{i}.loss_mask`` (and ``s{i}.acc``) scaled by
    ``stage_loss_weights[i]``, then regresses its sampled RoIs without gradient to give the
    proposals of stage ``i + 1``. Inference: every stage classifies the RoIs the previous stage
    regressed; class logits are averaged over stages (as mmdetection does, before the softmax),
    boxes come from the last stage's regression and each mask is the mean of the stages' mask
    probabilities for the detection's class (as mmdetection does).
    """

    def __init__(
        self,
        num_stages: int,
        stage_loss_weights: Sequence[float],
        bbox_roi_extractor: dict | list,
        bbox_head: dict | list,
        mask_roi_extractor: dict | list | None = None,
        mask_head: dict | list | None = None,
        train_cfg: list | None = None,
        test_cfg: ConfigDict | dict | None = None,
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg)
        if num_stages < 1:
            raise ValueError(f'roi_head.num_stages must be at least 1, got {num_stages}')
        if len(stage_loss_weights) != num_stages:
            raise ValueError(
                f'roi_head.stage_loss_weights {list(stage_loss_weights)} needs one weight per '
                f'stage (num_stages={num_stages})'
            )
        self.num_stages = num_stages
        self.stage_loss_weights = [float(w) for w in stage_loss_weights]

        # mmengine's ModuleList (unlike torch's) passes init_weights on to the heads it holds.
        def build(cfg: dict | list, key: str) -> ModuleList:
            return ModuleList(MODELS.build(c) for c in _per_stage(cfg, num_stages, key))

        self.bbox_roi_extractor = build(bbox_roi_extractor, 'bbox_roi_extractor')
        self.bbox_head = build(bbox_head, 'bbox_head')
        self.mask_head = build(mask_head, 'mask_head') if mask_head is not None else None
        self.share_roi_extractor = mask_roi_extractor is None
        if self.mask_head is not None and not self.share_roi_extractor:
            self.mask_roi_extractor = build(mask_roi_extractor, 'mask_roi_extractor')
        masks = self.mask_head if self.mask_head is not None else [None] * num_stages
        for box, mask in zip(self.bbox_head, masks, strict=True):
            check_num_classes(box, mask)

        self.bbox_assigner, self.bbox_sampler = [], []
        if train_cfg is not None:
            if not isinstance(train_cfg, (list, tuple)) or len(train_cfg) != num_stages:
                raise ValueError(
                    f'train_cfg.rcnn of a CascadeRoIHead must be a list of {num_stages} dicts '
                    '(one assigner/sampler per stage)'
                )
            for stage_cfg in train_cfg:
                self.bbox_assigner.append(TASK_UTILS.build(stage_cfg['assigner']))
                self.bbox_sampler.append(TASK_UTILS.build(stage_cfg['sampler']))

    # ----------------------------------------------------------------------------- forward
    def bbox_forward(
        self, x: tuple[Tensor, ...], rois: Tensor, stage: int = -1
    ) -> tuple[Tensor, Tensor]:
        """RoIs [K, 5] -> ``stage``'s (cls_score [K, C + 1], bbox_pred [K, 4 or 4C])."""
        return self.bbox_head[stage](self.bbox_roi_extractor[stage](x, rois))

    def mask_forward(self, x: tuple[Tensor, ...], rois: Tensor, stage: int = -1) -> Tensor:
        """RoIs [K, 5] -> ``stage``'s mask logits [K, n, 28, 28]."""
        return self.mask_head[stage](self.mask_roi_feats(x, rois, stage))

    def mask_roi_feats(self, x: tuple[Tensor, ...], rois: Tensor, stage: int = -1) -> Tensor:
        """RoIs [K, 5] -> ``stage``'s pooled mask-branch features [K, C, 14, 14]."""
        extractors = (
            self.bbox_roi_extractor if self.share_roi_extractor else self.mask_roi_extractor
        )
        return extractors[stage](x, rois)

    # ----------------------------------------------------------------------------- training
    def loss_by_proposals(
        self, x: tuple[Tensor, ...], proposals: list[Tensor], batch_data_samples: SampleList
    ) -> dict[str, Tensor]:
        """Weighted per-stage losses (``s0.loss_cls``, ...) from proposals ``bboxes`` [Ni, 4]."""
        if not self.bbox_sampler:
            raise RuntimeError('CascadeRoIHead.loss needs train_cfg (model.train_cfg.rcnn)')
        metas = [sample.metainfo for sample in batch_data_samples]
        if self.with_mask:
            gt_masks = [sample.gt_instances.masks for sample in batch_data_samples]
        losses = {}
        for stage in range(self.num_stages):
            sampling_results = self.assign_and_sample(
                proposals, batch_data_samples, self.bbox_assigner[stage], self.bbox_sampler[stage]
            )
            stage_losses, rois, cls_score, bbox_pred = self.bbox_loss(x, sampling_results, stage)
            if self.with_mask:
                stage_losses['loss_mask'] = self.mask_loss(x, sampling_results, gt_masks, stage)
            weight = self.stage_loss_weights[stage]
            for name, value in stage_losses.items():
                losses[f's{stage}.{name}'] = value * weight if 'loss' in name else value
            if stage < self.num_stages - 1:
                proposals = self.bbox_head[stage].refine_bboxes(
                    sampling_results, rois, cls_score, bbox_pred, metas
                )
        return losses

    def bbox_loss(
        self, x: tuple[Tensor, ...], sampling_results: list[SamplingResult], stage: int
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
        """Unweighted ``loss_cls``, ``loss_bbox`` and ``acc`` of ``stage``'s sampled RoIs, and
        the rois [K, 5], cls_score [K, C + 1] and bbox_pred [K, 4 or 4C] behind them."""
        rois = bbox2roi([res.priors for res in sampling_results])
        cls_score, bbox_pred = self.bbox_forward(x, rois, stage)
        losses = self.bbox_head[stage].loss(cls_score, bbox_pred, rois, sampling_results)
        return losses, rois, cls_score, bbox_pred

    def mask_loss(
        self,
        x: tuple[Tensor, ...],
        sampling_results: list[SamplingResult],
        gt_masks: list[BaseInstanceMasks],
        stage: int = -1,
    ) -> Tensor:
        """Unweighted mask loss of one stage's positive RoIs."""
        pos_rois = bbox2roi([res.pos_priors for res in sampling_results]).to(x[0].device)
        mask_preds = self.mask_forward(x, pos_rois, stage)
        return self.mask_head[stage].loss(mask_preds, sampling_results, gt_masks)

    # ----------------------------------------------------------------------------- inference
    def score_rois(
        self, x: tuple[Tensor, ...], rois: Tensor, counts: list[int], metas: list[dict]
    ) -> tuple[ConvFCBBoxHead, Tensor, Tensor, Tensor]:
        """RoIs [K, 5] through every stage, each refining the boxes of the next: the last
        stage's head and RoIs, the class scores averaged over stages and the last deltas."""
        stage_scores = []
        for stage in range(self.num_stages):
            cls_score, bbox_pred = self.bbox_forward(x, rois, stage)
            stage_scores.append(cls_score.float())
            if stage < self.num_stages - 1:
                head = self.bbox_head[stage]
                # each stage regresses with its own most likely foreground class
                labels = cls_score[:, :-1].argmax(1)
                boxes = [
                    head.regress_by_class(
                        image_rois[:, 1:], image_labels, deltas, meta['img_shape']
                    )
                    for image_rois, image_labels, deltas, meta in zip(
                        rois.split(counts),
                        labels.split(counts),
                        bbox_pred.split(counts),
                        metas,
                        strict=True,
                    )
                ]
                rois = torch.cat([rois[:, :1], torch.cat(boxes).to(rois.dtype)], dim=1)
        return self.bbox_head[-1], rois, torch.stack(stage_scores).mean(0), bbox_pred

    def predict_mask_probs(self, x: tuple[Tensor, ...], rois: Tensor, labels: Tensor) -> Tensor:
        """RoIs [K, 5], labels [K] -> mean over stages of the label's mask probability [K, s, s]."""
        if rois.size(0) == 0:
            size = self.mask_head[-1].mask_size
            return rois.new_zeros((0, size, size))
        probs = [
            head.predict_probs(self.mask_roi_feats(x, rois, stage), labels)
            for stage, head in enumerate(self.mask_head)
        ]
        return torch.stack(probs).mean(0)
