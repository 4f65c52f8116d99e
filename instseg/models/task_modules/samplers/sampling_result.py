"""Which priors a sampler picked, with their matched ground truth."""

from __future__ import annotations

import torch
from torch import Tensor

from ..assigners.assign_result import AssignResult


class SamplingResult:
    """Positive and negative priors drawn from one image's candidates.

    Attributes:
        pos_inds: LongTensor ``[P]``, sorted indices of the positives into ``all_priors``.
        neg_inds: LongTensor ``[Q]``, sorted indices of the negatives into ``all_priors``.
        all_priors: Tensor ``[N', 4]``: every candidate ``pos_inds`` / ``neg_inds`` index into,
            with the ground truths first when the sampler added them as proposals.
        pos_priors: Tensor ``[P, 4]``; neg_priors: Tensor ``[Q, 4]``.
        pos_gt_bboxes: Tensor ``[P, 4]``: the ground-truth box matched to each positive.
        pos_assigned_gt_inds: LongTensor ``[P]``: 0-based ground-truth index of each positive.
        pos_gt_labels: LongTensor ``[P]``: class label of each positive.
        pos_is_gt: uint8 Tensor ``[P]``: 1 where the positive is a ground truth added as proposal.
        num_gts: Number of ground-truth boxes of the image.
    """

    def __init__(
        self,
        pos_inds: Tensor,
        neg_inds: Tensor,
        priors: Tensor,
        gt_bboxes: Tensor,
        assign_result: AssignResult,
        gt_flags: Tensor,
    ) -> None:
        self.pos_inds = pos_inds
        self.neg_inds = neg_inds
        self.all_priors = priors
        self.pos_priors = priors[pos_inds]
        self.neg_priors = priors[neg_inds]
        self.pos_is_gt = gt_flags[pos_inds]
        self.num_gts = gt_bboxes.shape[0]
        self.pos_assigned_gt_inds = assign_result.gt_inds[pos_inds] - 1
        self.pos_gt_labels = assign_result.labels[pos_inds]
        self.pos_gt_bboxes = gt_bboxes.reshape(-1, 4)[self.pos_assigned_gt_inds]

    @property
    def priors(self) -> Tensor:
        """Positives then negatives, ``[P + Q, 4]``: the RoIs a box head is trained on.

        As in mmdetection; every candidate is :attr:`all_priors`.
        """
        return torch.cat([self.pos_priors, self.neg_priors])

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(num_gts={self.num_gts}, num_pos={self.pos_inds.numel()}, '
            f'num_neg={self.neg_inds.numel()}, num_candidates={self.all_priors.shape[0]})'
        )


def check_sample_inputs(
    assign_result: AssignResult, priors: Tensor, gt_bboxes: Tensor, gt_labels: Tensor, name: str
) -> None:
    """Raise ValueError naming ``name`` when the sampler inputs disagree in size."""
    if priors.ndim != 2 or priors.shape[-1] != 4:
        raise ValueError(f'{name}: priors must be [N, 4], got {tuple(priors.shape)}')
    if assign_result.num_preds != priors.shape[0]:
        raise ValueError(
            f'{name}: assign_result covers {assign_result.num_preds} priors, got {priors.shape[0]}'
        )
    if gt_bboxes.shape[0] != gt_labels.shape[0]:
        raise ValueError(
            f'{name}: {gt_bboxes.shape[0]} gt_bboxes but {gt_labels.shape[0]} gt_labels'
        )
