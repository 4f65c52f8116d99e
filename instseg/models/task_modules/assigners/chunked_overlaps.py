"""The IoU matrix of ground truths with priors, read a chunk of priors at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


class OverlapMaxima(NamedTuple):
    """Row and column maxima of an IoU matrix ``[M gts, N priors]``; ties go to the first index."""

    prior_max: Tensor  # [N] fp32: each prior's best IoU
    prior_argmax: Tensor  # [N] long: the gt giving it
    gt_max: Tensor  # [M] fp32: each gt's best IoU
    gt_argmax: Tensor  # [M] long: the prior giving it


class ChunkedOverlaps:
    """IoUs ``[M gts, N priors]`` computed about ``chunk_elements`` at a time, never held whole.

    A crowded image (1,862 nuclei x 262k anchors) would need a 2 GB matrix and several times that
    in temporaries; in chunks of priors memory stays bounded. With ``skip_far_gts`` only the gts
    that reach into a chunk's extent are computed for it (all others have IoU exactly 0 there),
    which changes no maximum that is above 0. Priors flagged in ``ignored`` [N] get IoU -1 with
    every gt. A single chunk is computed once and kept.

    Args:
        iou_fn: ``(gts [m, 4], priors [n, 4]) -> IoUs [m, n]``.
        gts: Ground-truth boxes [M, 4].
        priors: Priors [N, 4].
        chunk_elements: IoUs per chunk, about. Defaults to 2**20.
        skip_far_gts: Compute only the gts reaching into each chunk. Defaults to False.
        ignored: BoolTensor [N] of priors whose IoUs are set to -1. Defaults to None.
    """

    def __init__(
        self,
        iou_fn: Callable[[Tensor, Tensor], Tensor],
        gts: Tensor,
        priors: Tensor,
        chunk_elements: int = 1 << 20,
        skip_far_gts: bool = False,
        ignored: Tensor | None = None,
    ) -> None:
        self.iou_fn, self.gts, self.priors, self.ignored = iou_fn, gts, priors, ignored
        self.shape = (gts.shape[0], priors.shape[0])
        num_gts, num_priors = self.shape
        step = max(1, chunk_elements // max(num_gts, 1))
        self.parts = [slice(i, min(i + step, num_priors)) for i in range(0, num_priors, step)]
        # per chunk: the indices of the gts computed for it, or None for all of them
        self.gt_rows: list[Tensor | None] = [
            _reaching_into(gts, priors[part]) if skip_far_gts and num_gts > 0 else None
            for part in self.parts
        ]
        self._kept: Tensor | None = None
        self._maxima: OverlapMaxima | None = None
        self._part_gt_max: list[Tensor | None] = []

    @classmethod
    def of_matrix(cls, overlaps: Tensor) -> ChunkedOverlaps:
        """A given IoU matrix ``[M, N]`` as one chunk."""
        num_gts, num_priors = overlaps.shape
        self = cls(None, overlaps.new_empty(num_gts, 4), overlaps.new_empty(num_priors, 4))
        self.parts, self.gt_rows = [slice(0, num_priors)], [None]
        self._kept = overlaps
        return self

    def maxima(self) -> OverlapMaxima:
        """Each prior's best IoU and gt, each gt's best IoU and prior (computed once)."""
        if self._maxima is not None:
            return self._maxima
        num_gts, num_priors = self.shape
        device = self.priors.device
        prior_max = torch.zeros(num_priors, device=device)
        prior_argmax = torch.zeros(num_priors, dtype=torch.long, device=device)
        gt_max = torch.full((num_gts,), -float('inf'), device=device)
        gt_argmax = torch.zeros(num_gts, dtype=torch.long, device=device)
        for k, part in enumerate(self.parts):
            rows = self.gt_rows[k]
            if rows is not None and len(rows) == 0:
                self._part_gt_max.append(None)
                continue
            overlaps = self._block(k)
            if len(self.parts) == 1:
                self._kept = overlaps
            ids = self._gt_ids(k)
            best, best_gt = overlaps.max(dim=0)
            # Gts left out have IoU 0 here: a maximum below it cannot happen but at ignored
            # priors (-1), which the assigner resets anyway.
            prior_max[part] = best if rows is None else best.clamp(min=0)
            prior_argmax[part] = ids[best_gt]
            part_max, part_argmax = overlaps.max(dim=1)
            better = part_max > gt_max[ids]  # an earlier chunk keeps a tie
            gt_max[ids] = torch.where(better, part_max, gt_max[ids])
            gt_argmax[ids] = torch.where(better, part_argmax + part.start, gt_argmax[ids])
            self._part_gt_max.append(part_max)
        if any(rows is not None for rows in self.gt_rows):
            # IoUs left out are 0: a gt that no chunk computed has its best, 0, at prior 0.
            gt_max.clamp_(min=0)
        self._maxima = OverlapMaxima(prior_max, prior_argmax, gt_max, gt_argmax)
        return self._maxima

    def last_gt_at_its_max(self, min_iou: float) -> Tensor:
        """LongTensor [N]: for each prior, 1 + the index of the last gt whose best IoU is
        ``>= min_iou`` and is reached at this prior; 0 where no gt is.

        A second pass that recomputes only the chunks where some gt reaches its best IoU.
        """
        maxima = self.maxima()
        eligible = maxima.gt_max >= min_iou
        claimant = torch.zeros(self.shape[1], dtype=torch.long, device=self.priors.device)
        for k, part in enumerate(self.parts):
            part_gt_max = self._part_gt_max[k]
            if part_gt_max is None:
                continue
            ids = self._gt_ids(k)
            here = (part_gt_max == maxima.gt_max[ids]) & eligible[ids]
            if not here.any():
                continue
            claims = self._block(k, here) == maxima.gt_max[ids[here]][:, None]
            # The last of several claiming gts wins, as a loop over the gts in order would
            # leave it; argmax returns the first maximum, so search them flipped.
            last = claims.shape[0] - 1 - claims.flip(0).to(torch.uint8).argmax(dim=0)
            claimant[part] = torch.where(claims.any(dim=0), ids[here][last] + 1, 0)
        return claimant

    def _gt_ids(self, k: int) -> Tensor:
        rows = self.gt_rows[k]
        return torch.arange(self.shape[0], device=self.priors.device) if rows is None else rows

    def _block(self, k: int, select: Tensor | None = None) -> Tensor:
        """IoUs of chunk ``k`` with its gts, or with those of them flagged in ``select``."""
        if self._kept is not None:
            return self._kept if select is None else self._kept[select]
        part, rows = self.parts[k], self.gt_rows[k]
        if select is not None:
            rows = self._gt_ids(k)[select]
        gts = self.gts if rows is None else self.gts[rows]
        overlaps = self.iou_fn(gts, self.priors[part]).float()
        if self.ignored is not None:
            overlaps = overlaps.masked_fill(self.ignored[None, part], -1.0)
        return overlaps


def _reaching_into(gt_bboxes: Tensor, priors: Tensor) -> Tensor:
    """Indices of the gts that overlap the extent of ``priors`` (the others have IoU exactly 0
    with each of them)."""
    lo, hi = priors[:, :2].amin(dim=0), priors[:, 2:].amax(dim=0)
    reach = (gt_bboxes[:, :2] < hi).all(dim=1) & (gt_bboxes[:, 2:] > lo).all(dim=1)
    return reach.nonzero().squeeze(1)
