"""The outcome of matching priors (anchors or proposals) to ground-truth boxes."""

from __future__ import annotations

import torch
from torch import Tensor


class AssignResult:
    """Which ground truth each of ``N`` priors was matched to.

    Attributes:
        num_gts: Number of ground-truth boxes ``M`` the priors were matched against.
        gt_inds: LongTensor ``[N]``: ``0`` negative (background), ``-1`` ignored (neither positive
            nor negative), ``i + 1`` positive matched to ground truth ``i``.
        max_overlaps: Tensor ``[N]``: the IoU of each prior with its best ground truth
            (``-1`` for priors ignored because of an ignore region).
        labels: LongTensor ``[N]``: class label of the matched ground truth, ``-1`` elsewhere.
    """

    def __init__(self, num_gts: int, gt_inds: Tensor, max_overlaps: Tensor, labels: Tensor) -> None:
        self.num_gts = num_gts
        self.gt_inds = gt_inds
        self.max_overlaps = max_overlaps
        self.labels = labels

    @property
    def num_preds(self) -> int:
        """Number of priors ``N``."""
        return self.gt_inds.numel()

    def add_gt_(self, gt_labels: Tensor) -> None:
        """Prepend the ``M`` ground truths as priors matched to themselves (IoU 1), in place.

        ``gt_labels [M]`` -> ``gt_inds``, ``max_overlaps`` and ``labels`` grow to ``[M + N]``.
        """
        device = self.gt_inds.device
        num = gt_labels.numel()
        self_inds = torch.arange(1, num + 1, dtype=torch.long, device=device)
        self.gt_inds = torch.cat([self_inds, self.gt_inds])
        self.max_overlaps = torch.cat([self.max_overlaps.new_ones(num), self.max_overlaps])
        self.labels = torch.cat([gt_labels.to(device=device, dtype=self.labels.dtype), self.labels])

    def __repr__(self) -> str:
        num_pos = int((self.gt_inds > 0).sum())
        num_neg = int((self.gt_inds == 0).sum())
        return (
            f'{type(self).__name__}(num_gts={self.num_gts}, num_preds={self.num_preds}, '
            f'pos={num_pos}, neg={num_neg})'
        )
