"""Match priors to ground-truth boxes by IoU thresholds (mmdetection 3.x semantics)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from instseg.registry import TASK_UTILS

from .assign_result import AssignResult
from .chunked_overlaps import ChunkedOverlaps


@TASK_UTILS.register_module()
class MaxIoUAssigner:
    """Label each prior positive, negative or ignored from its IoU with the ground truths.

    Rules, applied in this order to the IoU matrix ``[M gts, N priors]``:

    1. Priors whose IoF with any ignore box exceeds ``ignore_iof_thr`` (when > 0) get IoU ``-1``
       with every gt and stay ignored (``gt_inds = -1``), also when the image has no gts.
    2. A prior whose best IoU is in ``[0, neg_iou_thr)`` (or ``[lo, hi)`` for a pair) is negative.
    3. A prior whose best IoU is ``>= pos_iou_thr`` is positive, matched to its best gt.
    4. ``match_low_quality``: every gt whose best IoU is ``>= min_pos_iou`` also claims its best
       prior (all priors tying at that IoU when ``gt_max_assign_all``); where several gts claim the
       same prior the one with the highest index wins.

    Priors matched by none of these stay ignored (``-1``).

    Args:
        pos_iou_thr: IoU at or above which a prior is positive.
        neg_iou_thr: IoU below which a prior is negative, or a ``(lo, hi)`` range.
        min_pos_iou: Minimum IoU for a low-quality match. Defaults to 0.0.
        gt_max_assign_all: Give a gt all priors that tie at its best IoU. Defaults to True.
        ignore_iof_thr: IoF threshold for ignore regions; ``<= 0`` disables. Defaults to -1.
        ignore_wrt_candidates: IoF over the prior's area (True) or the ignore box's area (False).
        match_low_quality: Apply rule 4. Defaults to True.
        gpu_assign_thr: With more gts than this (when > 0), compute on the CPU and move the result
            back, to bound device memory. Defaults to -1.
        iou_calculator: Config of the IoU calculator. Defaults to ``dict(type='BboxOverlaps2D')``.

    The IoU matrix is never held whole: :class:`ChunkedOverlaps` reads it in chunks of about
    ``CHUNK_ELEMENTS`` IoUs, so memory stays bounded on images with thousands of instances.
    """

    CHUNK_ELEMENTS = 1 << 20

    def __init__(
        self,
        pos_iou_thr: float,
        neg_iou_thr: float | Sequence[float],
        min_pos_iou: float = 0.0,
        gt_max_assign_all: bool = True,
        ignore_iof_thr: float = -1,
        ignore_wrt_candidates: bool = True,
        match_low_quality: bool = True,
        gpu_assign_thr: float = -1,
        iou_calculator: dict | None = None,
    ) -> None:
        if isinstance(neg_iou_thr, numbers.Real):
            neg_iou_thr = float(neg_iou_thr)
        elif isinstance(neg_iou_thr, Sequence) and len(neg_iou_thr) == 2:
            neg_iou_thr = (float(neg_iou_thr[0]), float(neg_iou_thr[1]))
        else:
            raise ValueError(
                'MaxIoUAssigner: neg_iou_thr must be a number or a (lo, hi) pair, '
                f'got {neg_iou_thr!r}'
            )
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = float(min_pos_iou)
        self.gt_max_assign_all = gt_max_assign_all
        self.ignore_iof_thr = ignore_iof_thr
        self.ignore_wrt_candidates = ignore_wrt_candidates
        self.match_low_quality = match_low_quality
        self.gpu_assign_thr = gpu_assign_thr
        self.iou_calculator = TASK_UTILS.build(
            dict(type='BboxOverlaps2D') if iou_calculator is None else iou_calculator
        )

    def assign(
        self,
        priors: Tensor,
        gt_bboxes: Tensor,
        gt_labels: Tensor,
        gt_bboxes_ignore: Tensor | None = None,
    ) -> AssignResult:
        """Assign ``priors [N, 4]`` to ``gt_bboxes [M, 4]`` with labels ``gt_labels [M]``.

        ``gt_bboxes_ignore [K, 4]`` are regions (e.g. COCO crowds) whose priors are ignored.
        Returns an :class:`AssignResult` on the priors' device.
        """
        if gt_bboxes.shape[0] != gt_labels.shape[0]:
            raise ValueError(
                f'MaxIoUAssigner: {gt_bboxes.shape[0]} gt_bboxes but {gt_labels.shape[0]} gt_labels'
            )
        device = priors.device
        on_cpu = 0 < self.gpu_assign_thr < gt_bboxes.shape[0]
        if on_cpu:
            priors, gt_bboxes, gt_labels = priors.cpu(), gt_bboxes.cpu(), gt_labels.cpu()
            if gt_bboxes_ignore is not None:
                gt_bboxes_ignore = gt_bboxes_ignore.cpu()
        # IoUs near the thresholds must be compared at full precision.
        priors = priors.float()
        gt_bboxes = gt_bboxes.to(device=priors.device, dtype=torch.float32)
        gt_labels = gt_labels.to(device=priors.device, dtype=torch.long)

        ignored = self._ignored_priors(priors, gt_bboxes_ignore)
        # With positive thresholds a gt can matter only to the priors it overlaps.
        overlaps = ChunkedOverlaps(
            self.iou_calculator,
            gt_bboxes,
            priors,
            self.CHUNK_ELEMENTS,
            skip_far_gts=self.pos_iou_thr > 0 and self.min_pos_iou > 0,
            ignored=ignored,
        )
        result = self._assign(overlaps, gt_labels)
        if ignored is not None:
            result.gt_inds[ignored] = -1
            result.labels[ignored] = -1
            result.max_overlaps[ignored] = -1.0
        if on_cpu:
            result.gt_inds = result.gt_inds.to(device)
            result.max_overlaps = result.max_overlaps.to(device)
            result.labels = result.labels.to(device)
        return result

    def assign_wrt_overlaps(self, overlaps: Tensor, gt_labels: Tensor) -> AssignResult:
        """Apply rules 2-4 to an IoU matrix ``overlaps [M, N]`` and ``gt_labels [M]``."""
        return self._assign(ChunkedOverlaps.of_matrix(overlaps), gt_labels)

    def _ignored_priors(self, priors: Tensor, gt_bboxes_ignore: Tensor | None) -> Tensor | None:
        """Rule 1: BoolTensor [N] of the priors inside ignore regions, or None (none given)."""
        if (
            self.ignore_iof_thr <= 0
            or gt_bboxes_ignore is None
            or gt_bboxes_ignore.numel() == 0
            or priors.numel() == 0
        ):
            return None
        gt_bboxes_ignore = gt_bboxes_ignore.to(device=priors.device, dtype=torch.float32)
        if self.ignore_wrt_candidates:
            iof = self.iou_calculator(priors, gt_bboxes_ignore, mode='iof').amax(dim=1)
        else:
            iof = self.iou_calculator(gt_bboxes_ignore, priors, mode='iof').amax(dim=0)
        return iof > self.ignore_iof_thr

    def _assign(self, overlaps: ChunkedOverlaps, gt_labels: Tensor) -> AssignResult:
        """Rules 2-4 on the IoU matrix ``[M, N]`` and ``gt_labels [M]``."""
        num_gts, num_priors = overlaps.shape
        device = gt_labels.device
        if num_gts == 0 or num_priors == 0:
            gt_inds = torch.zeros(num_priors, dtype=torch.long, device=device)
            labels = torch.full((num_priors,), -1, dtype=torch.long, device=device)
            return AssignResult(num_gts, gt_inds, torch.zeros(num_priors, device=device), labels)
        best = overlaps.maxima()

        # Rule 2: negatives. Rule 3: positives, matched to their best gt.
        lo, hi = (
            self.neg_iou_thr if isinstance(self.neg_iou_thr, tuple) else (0.0, self.neg_iou_thr)
        )
        gt_inds = torch.full((num_priors,), -1, dtype=torch.long, device=device)
        gt_inds[(best.prior_max >= lo) & (best.prior_max < hi)] = 0
        gt_inds = torch.where(best.prior_max >= self.pos_iou_thr, best.prior_argmax + 1, gt_inds)

        # Rule 4: each gt whose best IoU is high enough claims its best prior(s); the last wins.
        if self.match_low_quality:
            if self.gt_max_assign_all:
                claimant = overlaps.last_gt_at_its_max(self.min_pos_iou)
            else:
                eligible = best.gt_max >= self.min_pos_iou
                gt_ids = torch.arange(1, num_gts + 1, device=device)
                claimant = torch.zeros_like(gt_inds).scatter_reduce(
                    0, best.gt_argmax, gt_ids * eligible, reduce='amax'
                )
            gt_inds = torch.where(claimant > 0, claimant, gt_inds)

        labels = torch.where(gt_inds > 0, gt_labels[(gt_inds - 1).clamp(min=0)], -1)
        return AssignResult(num_gts, gt_inds, best.prior_max, labels)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(pos_iou_thr={self.pos_iou_thr}, '
            f'neg_iou_thr={self.neg_iou_thr}, min_pos_iou={self.min_pos_iou}, '
            f'match_low_quality={self.match_low_quality})'
        )
