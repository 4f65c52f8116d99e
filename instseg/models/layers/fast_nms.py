"""Fast NMS (Bolya et al., YOLACT, 2019): class-wise suppression as one matrix operation."""

from __future__ import annotations

import torch
from torch import Tensor


def _pairwise_iou(boxes: Tensor) -> Tensor:
    """IoU of every pair within each group: Tensor[G, k, 4] -> fp32 Tensor[G, k, k]."""
    b = boxes.float()
    area = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    lt = torch.maximum(b[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(b[:, :, None, 2:], b[:, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-6)


def fast_nms(
    boxes: Tensor,
    scores: Tensor,
    score_thr: float,
    iou_thr: float,
    top_k: int,
    max_num: int = -1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Class-wise Fast NMS over ``N`` candidates of ``C`` classes.

    For every class, the ``top_k`` candidates with the highest score are sorted; candidate ``j``
    is dropped when any higher-scored candidate of that class overlaps it by IoU ``> iou_thr``,
    whether or not that candidate was itself dropped (unlike greedy NMS, which lets only kept
    boxes suppress). Survivors scoring ``<= score_thr`` are dropped too; the rest, over all
    classes, are sorted by score and cut to ``max_num`` (all when ``max_num <= 0``).

    Args:
        boxes: Tensor[N, 4] xyxy, shared by all classes.
        scores: Tensor[N, C] per-class scores (no background column).

    Returns:
        ``scores`` Tensor[M], ``labels`` LongTensor[M] and ``inds`` LongTensor[M], the row of
        ``boxes`` each detection comes from (one row may be kept for several classes).
    """
    if boxes.dim() != 2 or boxes.size(-1) != 4:
        raise ValueError(f'fast_nms: boxes must be [N, 4], got {tuple(boxes.shape)}')
    if scores.dim() != 2 or scores.size(0) != boxes.size(0):
        raise ValueError(
            f'fast_nms: scores must be [N, C] for {boxes.size(0)} boxes, got {tuple(scores.shape)}'
        )
    num_classes = scores.size(1)
    k = min(top_k, boxes.size(0)) if top_k > 0 else boxes.size(0)
    if k == 0 or num_classes == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return scores.new_zeros(0), empty, empty.clone()
    top_scores, top_inds = scores.t().topk(k, dim=1)  # [C, k], best first
    class_boxes = boxes[top_inds]  # [C, k, 4]
    iou = _pairwise_iou(class_boxes)
    # iou[c, i, j] for i < j: how much the better-scored i overlaps j.
    max_iou_above = iou.triu(diagonal=1).max(dim=1).values  # [C, k]
    keep = (max_iou_above <= iou_thr) & (top_scores > score_thr)
    labels = torch.arange(num_classes, device=boxes.device)[:, None].expand_as(keep)[keep]
    kept_scores, order = top_scores[keep].sort(descending=True)
    if max_num > 0:
        order, kept_scores = order[:max_num], kept_scores[:max_num]
    return kept_scores, labels[order], top_inds[keep][order]
