"""The R-CNN box parameterisation (dx, dy, dw, dh), with mmdetection 3.x semantics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from instseg.registry import TASK_UTILS

# Widths and heights are floored here before division and log, so that a degenerate box gives a
# large finite target instead of inf / NaN that would poison the whole batch's loss.
_MIN_SIZE = 1e-6


def _check_boxes(name: str, boxes: Tensor) -> None:
    if boxes.shape[-1] != 4:
        raise ValueError(
            f'DeltaXYWHBBoxCoder: {name} must have shape [..., 4], got {tuple(boxes.shape)}'
        )


@TASK_UTILS.register_module()
class DeltaXYWHBBoxCoder:
    """Encode a box relative to a reference box (anchor or RoI) as normalised deltas and back.

    With reference centre ``(px, py)`` and size ``(pw, ph)`` and target ``(gx, gy, gw, gh)``::

        dx = (gx - px) / pw,  dy = (gy - py) / ph,  dw = log(gw / pw),  dh = log(gh / ph)

    then ``(d - target_means) / target_stds``. Boxes are ``(x1, y1, x2, y2)``, width ``x2 - x1``.
    ``target_stds=(0.1, 0.1, 0.2, 0.2)`` equals torchvision's / detectron2's
    ``weights=(10, 10, 5, 5)``. All arithmetic runs in fp32; results come back in the promoted
    dtype of the two inputs (fp32 when either is fp32).

    Args:
        target_means: Means subtracted from the raw deltas. Defaults to zeros.
        target_stds: Standard deviations dividing the raw deltas. Defaults to ones.
        clip_border: Clip decoded boxes to ``max_shape`` when given. Defaults to True.
        add_ctr_clamp: Clamp the centre shift to ``ctr_clamp`` pixels and only cap ``dw, dh`` from
            above (as mmdetection does for some single-stage heads). Defaults to False.
        ctr_clamp: Maximum centre shift in pixels when ``add_ctr_clamp``. Defaults to 32.
    """

    encode_size = 4

    def __init__(
        self,
        target_means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        target_stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        clip_border: bool = True,
        add_ctr_clamp: bool = False,
        ctr_clamp: int = 32,
    ) -> None:
        if len(target_means) != 4 or len(target_stds) != 4:
            raise ValueError(
                'DeltaXYWHBBoxCoder: target_means and target_stds need 4 values each, '
                f'got {target_means!r} and {target_stds!r}'
            )
        if any(s <= 0 for s in target_stds):
            raise ValueError(
                f'DeltaXYWHBBoxCoder: target_stds must be positive, got {target_stds!r}'
            )
        self.means = tuple(float(m) for m in target_means)
        self.stds = tuple(float(s) for s in target_stds)
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp

    def encode(self, bboxes: Tensor, gt_bboxes: Tensor) -> Tensor:
        """Deltas ``[..., 4]`` moving reference ``bboxes [..., 4]`` onto ``gt_bboxes [..., 4]``."""
        _check_boxes('bboxes', bboxes)
        _check_boxes('gt_bboxes', gt_bboxes)
        if bboxes.shape != gt_bboxes.shape:
            raise ValueError(
                f'DeltaXYWHBBoxCoder.encode: bboxes {tuple(bboxes.shape)} and '
                f'gt_bboxes {tuple(gt_bboxes.shape)} must have the same shape'
            )
        out_dtype = torch.promote_types(bboxes.dtype, gt_bboxes.dtype)
        p = bboxes.float()
        g = gt_bboxes.float()
        pwh = (p[..., 2:] - p[..., :2]).clamp(min=_MIN_SIZE)
        gwh = (g[..., 2:] - g[..., :2]).clamp(min=_MIN_SIZE)
        pxy = (p[..., :2] + p[..., 2:]) * 0.5
        gxy = (g[..., :2] + g[..., 2:]) * 0.5
        deltas = torch.cat([(gxy - pxy) / pwh, torch.log(gwh / pwh)], dim=-1)
        means = deltas.new_tensor(self.means)
        stds = deltas.new_tensor(self.stds)
        return ((deltas - means) / stds).to(out_dtype)

    def decode(
        self,
        bboxes: Tensor,
        pred_deltas: Tensor,
        max_shape: Sequence[int] | Tensor | None = None,
        wh_ratio_clip: float = 16 / 1000,
    ) -> Tensor:
        """Apply ``pred_deltas [..., 4 * k]`` to reference ``bboxes [..., 4]`` -> ``[..., 4 * k]``.

        Each of the ``k`` groups of 4 deltas (e.g. class-specific deltas ``[N, 4 * C]``) is decoded
        against the same reference box. ``dw, dh`` are clamped to ``|log(wh_ratio_clip)|``.
        ``max_shape`` is the image ``(h, w)`` (a tuple, or a Tensor ``[2]`` or ``[B, 2]`` for
        batched ``[B, N, 4]`` boxes); decoded boxes are clipped to it when ``clip_border``.
        """
        _check_boxes('bboxes', bboxes)
        lead = bboxes.shape[:-1]
        if pred_deltas.shape[:-1] != lead or pred_deltas.shape[-1] % 4 != 0:
            raise ValueError(
                f'DeltaXYWHBBoxCoder.decode: pred_deltas {tuple(pred_deltas.shape)} '
                f'must be [..., 4 * k] with the leading dims of bboxes '
                f'{tuple(bboxes.shape)}'
            )
        out_dtype = torch.promote_types(bboxes.dtype, pred_deltas.dtype)
        k = pred_deltas.shape[-1] // 4
        deltas = pred_deltas.float().reshape(*lead, k, 4)
        deltas = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        rois = bboxes.float()[..., None, :]
        pxy = (rois[..., :2] + rois[..., 2:]) * 0.5
        pwh = rois[..., 2:] - rois[..., :2]
        dxy_wh = pwh * deltas[..., :2]
        dwh = deltas[..., 2:]
        max_ratio = abs(math.log(wh_ratio_clip))
        if self.add_ctr_clamp:
            dxy_wh = dxy_wh.clamp(min=-self.ctr_clamp, max=self.ctr_clamp)
            dwh = dwh.clamp(max=max_ratio)
        else:
            dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
        gxy = pxy + dxy_wh
        half_wh = pwh * dwh.exp() * 0.5
        x1y1 = gxy - half_wh
        x2y2 = gxy + half_wh
        if self.clip_border and max_shape is not None:
            x1y1, x2y2 = self._clip(x1y1, x2y2, max_shape)
        out = torch.cat([x1y1, x2y2], dim=-1)
        return out.reshape(*lead, 4 * k).to(out_dtype)

    @staticmethod
    def _clip(
        x1y1: Tensor, x2y2: Tensor, max_shape: Sequence[int] | Tensor
    ) -> tuple[Tensor, Tensor]:
        """Clip corner tensors ``[..., k, 2]`` to ``[0, w] x [0, h]``."""
        if isinstance(max_shape, Tensor):
            shape = max_shape.to(device=x1y1.device, dtype=torch.float32)
            # max_shape [..., >=2] holds (h, w); reorder to (w, h) and align its leading dims with
            # the boxes' leading dims.
            limit = torch.stack([shape[..., 1], shape[..., 0]], dim=-1)
            limit = limit.reshape(*limit.shape[:-1], *([1] * (x1y1.ndim - limit.ndim)), 2)
            return torch.minimum(x1y1.clamp(min=0), limit), torch.minimum(x2y2.clamp(min=0), limit)
        h, w = float(max_shape[0]), float(max_shape[1])

        def clip(xy: Tensor) -> Tensor:
            return torch.stack([xy[..., 0].clamp(0, w), xy[..., 1].clamp(0, h)], dim=-1)

        return clip(x1y1), clip(x2y2)
