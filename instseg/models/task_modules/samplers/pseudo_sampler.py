"""A sampler that keeps every assigned prior."""

from __future__ import annotations

import torch
from torch import Tensor

from instseg.registry import TASK_UTILS

from ..assigners.assign_result import AssignResult
from .sampling_result import SamplingResult, check_sample_inputs


@TASK_UTILS.register_module()
class PseudoSampler:
    """Take every positive and every negative prior; no gts are added (for dense heads)."""

    def sample(
        self, assign_result: AssignResult, priors: Tensor, gt_bboxes: Tensor, gt_labels: Tensor
    ) -> SamplingResult:
        """Wrap ``assign_result`` for ``priors [N, 4]`` and ``gt_bboxes [M, 4]`` as a result."""
        check_sample_inputs(assign_result, priors, gt_bboxes, gt_labels, 'PseudoSampler')
        pos_inds = torch.nonzero(assign_result.gt_inds > 0).flatten()
        neg_inds = torch.nonzero(assign_result.gt_inds == 0).flatten()
        gt_flags = priors.new_zeros((priors.shape[0],), dtype=torch.uint8)
        return SamplingResult(pos_inds, neg_inds, priors, gt_bboxes, assign_result, gt_flags)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'
