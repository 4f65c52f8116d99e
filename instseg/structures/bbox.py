"""Box helpers shared by the heads. Boxes are (x1, y1, x2, y2) in continuous pixel coordinates."""

from __future__ import annotations

import torch
from torch import Tensor


def bbox2roi(bbox_list: list[Tensor]) -> Tensor:
    """Per-image boxes [Ni, 4] -> RoIs [sum Ni, 5] as (batch index, x1, y1, x2, y2)."""
    rois = [
        torch.cat([boxes.new_full((boxes.size(0), 1), i), boxes[:, :4]], dim=1)
        for i, boxes in enumerate(bbox_list)
    ]
    if not rois:
        return torch.zeros((0, 5))
    return torch.cat(rois, dim=0)


def scale_boxes(boxes: Tensor, scale_factor: tuple[float, float]) -> Tensor:
    """Multiply x coordinates by ``scale_factor[0]`` and y by ``scale_factor[1]``.
    [N, 4] -> [N, 4]."""
    w_scale, h_scale = scale_factor
    return boxes * boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])


def clip_boxes(boxes: Tensor, shape: tuple[int, int]) -> Tensor:
    """Clip boxes to an image of ``shape`` (h, w). [..., 4] -> [..., 4]."""
    h, w = shape
    x = boxes[..., 0::2].clamp(0, w)
    y = boxes[..., 1::2].clamp(0, h)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)
