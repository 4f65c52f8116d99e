"""Draw a fixed-size, class-balanced minibatch of priors for training a head."""

from __future__ import annotations

import torch
from torch import Tensor

from instseg.registry import TASK_UTILS

from ..assigners.assign_result import AssignResult
from .sampling_result import SamplingResult, check_sample_inputs


def _random_subset(inds: Tensor, num: int) -> Tensor:
    """At most ``num`` of ``inds [K]``, drawn uniformly without replacement, sorted."""
    if inds.numel() > num:
        inds = inds[torch.randperm(inds.numel(), device=inds.device)[:num]]
    return inds.sort().values


@TASK_UTILS.register_module()
class RandomSampler:
    """Sample ``num`` priors, at most ``num * pos_fraction`` of them positive, uniformly at random.

    Negatives fill the rest, capped at ``neg_pos_ub * max(num_pos, 1)`` when ``neg_pos_ub >= 0``.
    Draws use ``torch.randperm`` on the tensors' device, so they follow ``torch.manual_seed``.

    Args:
        num: Number of priors to sample per image.
        pos_fraction: Upper bound on the fraction of positives.
        neg_pos_ub: Upper bound on negatives per positive; ``-1`` disables. Defaults to -1.
        add_gt_as_proposals: Add the ground-truth boxes to the candidates, matched to themselves.
            Defaults to True.
    """

    def __init__(
        self,
        num: int,
        pos_fraction: float,
        neg_pos_ub: float = -1,
        add_gt_as_proposals: bool = True,
    ) -> None:
        if num < 0 or not 0.0 <= pos_fraction <= 1.0:
            raise ValueError(
                f'RandomSampler: need num >= 0 and pos_fraction in [0, 1], got '
                f'num={num}, pos_fraction={pos_fraction}'
            )
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    def sample(
        self, assign_result: AssignResult, priors: Tensor, gt_bboxes: Tensor, gt_labels: Tensor
    ) -> SamplingResult:
        """Sample from ``priors [N, 4]`` assigned to ``gt_bboxes [M, 4]`` / ``gt_labels [M]``.

        ``assign_result`` is not modified; when gts are added the result's ``all_priors`` is
        ``[M + N, 4]`` with the gts first.
        """
        check_sample_inputs(assign_result, priors, gt_bboxes, gt_labels, 'RandomSampler')
        gt_bboxes = gt_bboxes.to(priors.device)
        gt_flags = priors.new_zeros((priors.shape[0],), dtype=torch.uint8)
        if self.add_gt_as_proposals and gt_bboxes.shape[0] > 0:
            priors = torch.cat([gt_bboxes.to(priors.dtype), priors])
            assign_result = AssignResult(
                assign_result.num_gts,
                assign_result.gt_inds,
                assign_result.max_overlaps,
                assign_result.labels,
            )
            assign_result.add_gt_(gt_labels)
            gt_flags = torch.cat([gt_flags.new_ones((gt_bboxes.shape[0],)), gt_flags])

        gt_inds = assign_result.gt_inds
        pos_inds = _random_subset(
            torch.nonzero(gt_inds > 0).flatten(), int(self.num * self.pos_fraction)
        )
        num_neg = self.num - pos_inds.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(pos_inds.numel(), 1)))
        neg_inds = _random_subset(torch.nonzero(gt_inds == 0).flatten(), num_neg)
        return SamplingResult(pos_inds, neg_inds, priors, gt_bboxes, assign_result, gt_flags)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(num={self.num}, pos_fraction={self.pos_fraction}, '
            f'neg_pos_ub={self.neg_pos_ub}, add_gt_as_proposals={self.add_gt_as_proposals})'
        )
