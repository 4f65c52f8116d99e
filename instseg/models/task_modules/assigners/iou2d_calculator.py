"""Pairwise and aligned IoU / IoF between axis-aligned boxes."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

from instseg.registry import TASK_UTILS

_MODES = ('iou', 'iof')


def bbox_overlaps(
    bboxes1: Tensor,
    bboxes2: Tensor,
    mode: str = 'iou',
    is_aligned: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """Overlap of ``(x1, y1, x2, y2)`` boxes (width ``x2 - x1``).

    ``mode='iou'``: intersection / union; ``mode='iof'``: intersection / area of ``bboxes1``
    (intersection over foreground). Not aligned: ``bboxes1 [N, 4]``, ``bboxes2 [M, 4]`` ->
    ``[N, M]``. Aligned: ``bboxes1 [..., 4]`` and ``bboxes2 [..., 4]`` of one shape -> ``[...]``.
    Computed in fp32 (areas overflow fp16); returned in the promoted input dtype (fp32 for integer
    boxes). Degenerate boxes (zero area) give 0, not NaN.
    """
    if mode not in _MODES:
        raise ValueError(f'bbox_overlaps: mode must be one of {_MODES}, got {mode!r}')
    for name, boxes in (('bboxes1', bboxes1), ('bboxes2', bboxes2)):
        if boxes.shape[-1] != 4:
            raise ValueError(
                f'bbox_overlaps: {name} must have shape [..., 4], got {tuple(boxes.shape)}'
            )
    out_dtype = torch.promote_types(bboxes1.dtype, bboxes2.dtype)
    if not out_dtype.is_floating_point:
        out_dtype = torch.float32
    b1 = bboxes1.float()
    b2 = bboxes2.float()

    if is_aligned:
        if b1.shape != b2.shape:
            raise ValueError(
                f'bbox_overlaps: aligned boxes need equal shapes, got '
                f'{tuple(b1.shape)} and {tuple(b2.shape)}'
            )
        lt = torch.maximum(b1[..., :2], b2[..., :2])
        rb = torch.minimum(b1[..., 2:], b2[..., 2:])
        area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
        area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    else:
        if b1.ndim != 2 or b2.ndim != 2:
            raise ValueError(
                f'bbox_overlaps: unaligned boxes must be [N, 4] and [M, 4], got '
                f'{tuple(b1.shape)} and {tuple(b2.shape)}'
            )
        if mode == 'iou':
            # torchvision divides without a floor: 0 / 0 for two empty boxes becomes NaN -> 0.
            return box_iou(b1, b2).nan_to_num_(0.0).to(out_dtype)
        lt = torch.maximum(b1[:, None, :2], b2[None, :, :2])
        rb = torch.minimum(b1[:, None, 2:], b2[None, :, 2:])
        area1 = ((b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1]))[:, None]
        area2 = ((b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1]))[None, :]

    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    denom = area1 + area2 - inter if mode == 'iou' else area1
    return (inter / denom.clamp(min=eps)).to(out_dtype)


@TASK_UTILS.register_module()
class BboxOverlaps2D:
    """:func:`bbox_overlaps` as a callable that configs name ``dict(type='BboxOverlaps2D')``.

    ``(bboxes1 [N, 4], bboxes2 [M, 4], mode='iou' | 'iof', is_aligned=False) -> [N, M]``
    (``[N]`` when aligned).
    """

    def __call__(
        self, bboxes1: Tensor, bboxes2: Tensor, mode: str = 'iou', is_aligned: bool = False
    ) -> Tensor:
        """Overlaps ``[N, M]`` (``[N]`` when aligned) in the promoted input dtype."""
        return bbox_overlaps(bboxes1, bboxes2, mode=mode, is_aligned=is_aligned)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'
