"""Match priors to ground-truth boxes by IoU thresholds (mmdetection 3.x semantics)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from instseg.registry import TASK_UTILS

from .assign_result import AssignResult


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

    The IoU matrix is never held whole: priors are taken in chunks of about ``CHUNK_ELEMENTS``
    IoUs, so memory stays bounded on images with thousands of instances.
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

        ignored = None
        if (
            self.ignore_iof_thr > 0
            and gt_bboxes_ignore is not None
            and gt_bboxes_ignore.numel() > 0
            and priors.numel() > 0
        ):
            gt_bboxes_ignore = gt_bboxes_ignore.to(device=priors.device, dtype=torch.float32)
            if self.ignore_wrt_candidates:
                iof = self.iou_calculator(priors, gt_bboxes_ignore, mode='iof').amax(dim=1)
            else:
                iof = self.iou_calculator(gt_bboxes_ignore, priors, mode='iof').amax(dim=0)
            ignored = iof > self.ignore_iof_thr

        def overlaps_of(part: slice, rows: Tensor | None) -> Tensor:
            gts = gt_bboxes if rows is None else gt_bboxes[rows]
            overlaps = self.iou_calculator(gts, priors[part]).float()
            if ignored is not None:
                overlaps = overlaps.masked_fill(ignored[None, part], -1.0)
            return overlaps

        # A crowded image (1,862 nuclei x 262k anchors) would need a 2 GB IoU matrix and several
        # times that in temporaries: go through the priors in chunks of about CHUNK_ELEMENTS
        # IoUs. With positive thresholds only the gts that reach into a chunk's extent can
        # matter to it (all others have IoU 0 there), so only those are computed.
        num_priors = priors.shape[0]
        chunk = max(1, self.CHUNK_ELEMENTS // max(gt_bboxes.shape[0], 1))
        parts = [slice(i, min(i + chunk, num_priors)) for i in range(0, num_priors, chunk)]
        if self.pos_iou_thr > 0 and self.min_pos_iou > 0 and gt_bboxes.shape[0] > 0:
            rows = [_reaching_into(gt_bboxes, priors[part]) for part in parts]
        else:
            rows = [None] * len(parts)
        parts = list(zip(parts, rows, strict=True))
        result = self._assign(overlaps_of, parts, num_priors, gt_labels)
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
        num_priors = overlaps.shape[1]
        whole = [(slice(0, num_priors), None)]
        return self._assign(lambda part, rows: overlaps[:, part], whole, num_priors, gt_labels)

    def _assign(
        self,
        overlaps_of: Callable[[slice, Tensor | None], Tensor],
        parts: list[tuple[slice, Tensor | None]],
        num_priors: int,
        gt_labels: Tensor,
    ) -> AssignResult:
        """Rules 2-4 on an IoU matrix ``[M, N]`` read in ``parts``: (slice of priors, rows of
        the gts that can overlap them, None for all). ``overlaps_of(part, rows)`` gives that
        block. One pass finds the maxima; a second recomputes, for the low-quality claims, only
        the blocks where a gt reaches its best IoU."""
        num_gts = gt_labels.shape[0]
        device = gt_labels.device
        gt_inds = torch.full((num_priors,), -1, dtype=torch.long, device=device)
        labels = torch.full((num_priors,), -1, dtype=torch.long, device=device)
        if num_gts == 0 or num_priors == 0:
            gt_inds.fill_(0)
            max_overlaps = torch.zeros(num_priors, device=device)
            return AssignResult(num_gts, gt_inds, max_overlaps, labels)

        everyone = torch.arange(num_gts, device=device)
        max_overlaps = torch.zeros(num_priors, device=device)
        argmax_overlaps = torch.zeros(num_priors, dtype=torch.long, device=device)
        gt_max_overlaps = torch.full((num_gts,), -float('inf'), device=device)
        gt_argmax_overlaps = torch.zeros(num_gts, dtype=torch.long, device=device)
        part_maxima, kept = [], None
        for part, rows in parts:
            if rows is not None and len(rows) == 0:
                part_maxima.append(None)
                continue
            overlaps = overlaps_of(part, rows)
            ids = everyone if rows is None else rows
            best, best_gt = overlaps.max(dim=0)
            # Gts left out have IoU 0 here: a maximum below it cannot happen but at ignored
            # priors (-1), which the caller resets anyway.
            max_overlaps[part] = best if rows is None else best.clamp(min=0)
            argmax_overlaps[part] = ids[best_gt]
            part_max, part_argmax = overlaps.max(dim=1)
            better = part_max > gt_max_overlaps[ids]  # an earlier chunk keeps a tie
            gt_max_overlaps[ids] = torch.where(better, part_max, gt_max_overlaps[ids])
            gt_argmax_overlaps[ids] = torch.where(
                better, part_argmax + part.start, gt_argmax_overlaps[ids]
            )
            part_maxima.append((ids, part_max))
            kept = overlaps if len(parts) == 1 else None
        if any(rows is not None for _, rows in parts):
            # IoUs left out are 0: a gt that no part computed has its best, 0, at prior 0.
            gt_max_overlaps.clamp_(min=0)

        if isinstance(self.neg_iou_thr, tuple):
            lo, hi = self.neg_iou_thr
        else:
            lo, hi = 0.0, self.neg_iou_thr
        gt_inds[(max_overlaps >= lo) & (max_overlaps < hi)] = 0

        pos = max_overlaps >= self.pos_iou_thr
        gt_inds = torch.where(pos, argmax_overlaps + 1, gt_inds)

        if self.match_low_quality:
            eligible = gt_max_overlaps >= self.min_pos_iou
            if self.gt_max_assign_all:
                claimant = torch.zeros_like(gt_inds)
                for (part, _), maxima in zip(parts, part_maxima, strict=True):
                    if maxima is None:
                        continue
                    ids, part_max = maxima
                    here = (part_max == gt_max_overlaps[ids]) & eligible[ids]
                    if not here.any():
                        continue
                    if kept is not None:
                        overlaps = kept[here]
                    else:
                        overlaps = overlaps_of(part, ids[here])
                    claims = overlaps == gt_max_overlaps[ids[here]][:, None]
                    # Of several claiming gts the last one wins, as a loop over gts in order
                    # would leave it; argmax returns the first maximum, so search them flipped.
                    last = claims.shape[0] - 1 - claims.flip(0).to(torch.uint8).argmax(dim=0)
                    claimant[part] = torch.where(claims.any(dim=0), ids[here][last] + 1, 0)
            else:
                gt_ids = torch.arange(1, num_gts + 1, device=device)
                claimant = torch.zeros_like(gt_inds).scatter_reduce(
                    0, gt_argmax_overlaps, gt_ids * eligible, reduce='amax'
                )
            gt_inds = torch.where(claimant > 0, claimant, gt_inds)

        pos = gt_inds > 0
        labels = torch.where(pos, gt_labels[(gt_inds - 1).clamp(min=0)], labels)
        return AssignResult(num_gts, gt_inds, max_overlaps, labels)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(pos_iou_thr={self.pos_iou_thr}, '
            f'neg_iou_thr={self.neg_iou_thr}, min_pos_iou={self.min_pos_iou}, '
            f'match_low_quality={self.match_low_quality})'
        )


def _reaching_into(gt_bboxes: Tensor, priors: Tensor) -> Tensor:
    """Indices of the gts that overlap the extent of ``priors`` (the others have IoU exactly 0
    with each of them)."""
    lo, hi = priors[:, :2].amin(dim=0), priors[:, 2:].amax(dim=0)
    reach = (gt_bboxes[:, :2] < hi).all(dim=1) & (gt_bboxes[:, 2:] > lo).all(dim=1)
    return reach.nonzero().squeeze(1)
