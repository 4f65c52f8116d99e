"""Pool one fixed-size feature per RoI from the FPN level that matches the RoI's scale."""

from __future__ import annotations

import torch
from mmengine.model import BaseModule
from torch import Tensor
from torchvision.ops import roi_pool

from instseg.ops import roi_align
from instseg.registry import MODELS


@MODELS.register_module()
class SingleRoIExtractor(BaseModule):
    """RoIAlign or RoIPool on the FPN level chosen by the RoI's size. (features, rois [K, 5]) ->
    [K, C, S, S].

    A RoI of scale ``sqrt(w * h)`` goes to level ``floor(log2(scale / finest_scale + 1e-6))``
    clamped to the available levels (mmdetection's mapping: with ``finest_scale=56`` a 112-224 px
    RoI pools from the stride-8 level). ``roi_layer`` takes mmdetection's keys and has
    ``torchvision.ops.roi_align``'s semantics (on CPU computed by
    :func:`instseg.ops.roi_align`, a sparse matrix product with a much faster backward):
    ``aligned=True`` samples at pixel centres (mmdetection, detectron2), ``aligned=False``
    reproduces torchvision's own detectors. ``roi_layer=dict(type='RoIPool', output_size=7)``
    is Fast R-CNN's pooling (``torchvision.ops.roi_pool``): RoI corners rounded to the feature
    grid, the maximum of each bin.
    """

    def __init__(
        self,
        roi_layer: dict,
        out_channels: int,
        featmap_strides: list[int],
        finest_scale: int = 56,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        roi_layer = dict(roi_layer)
        self.layer_type = roi_layer.pop('type', 'RoIAlign')
        if self.layer_type not in ('RoIAlign', 'RoIPool'):
            raise KeyError(
                f"roi_layer type {self.layer_type!r} is not supported; use 'RoIAlign' or 'RoIPool'"
            )
        output_size = roi_layer.pop('output_size')
        self.output_size = (
            (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        )
        if self.layer_type == 'RoIAlign':
            self.sampling_ratio = roi_layer.pop('sampling_ratio', 0)
            self.aligned = roi_layer.pop('aligned', True)
            roi_layer.pop('pool_mode', None)  # mmcv's default 'avg' is what roi_align does
        if roi_layer:
            raise KeyError(f'Unknown {self.layer_type} roi_layer keys: {sorted(roi_layer)}')
        self.out_channels = out_channels
        self.featmap_strides = list(featmap_strides)
        self.finest_scale = finest_scale

    @property
    def num_inputs(self) -> int:
        return len(self.featmap_strides)

    def map_roi_levels(self, rois: Tensor, num_levels: int) -> Tensor:
        """Level index of each RoI. [K, 5] -> LongTensor[K] in [0, num_levels)."""
        # fp32: a box area above 65504 px overflows fp16 and would pick the coarsest level
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]).float() * (rois[:, 4] - rois[:, 2]).float())
        levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return levels.clamp(min=0, max=num_levels - 1).long()

    def forward(self, feats: tuple[Tensor, ...], rois: Tensor) -> Tensor:
        feats = feats[: self.num_inputs]
        out = feats[0].new_zeros((rois.size(0), self.out_channels, *self.output_size))
        if rois.size(0) == 0:
            return out
        # RoIs stay fp32 under autocast: bf16 rounds coordinates near 1000 px to 4-px steps
        rois = rois.float()
        if len(feats) == 1:
            return self._pool(feats[0], rois, self.featmap_strides[0])
        levels = self.map_roi_levels(rois, len(feats))
        for i, feat in enumerate(feats):
            inds = torch.nonzero(levels == i, as_tuple=True)[0]
            if inds.numel() > 0:
                out[inds] = self._pool(feat, rois[inds], self.featmap_strides[i])
            else:
                # Keeps every level in the graph so DDP sees a gradient for all of them.
                out = out + feat.sum() * 0.0
        return out

    def _pool(self, feat: Tensor, rois: Tensor, stride: int) -> Tensor:
        if self.layer_type == 'RoIPool':
            return roi_pool(feat.float(), rois, self.output_size, 1.0 / stride).to(feat.dtype)
        return roi_align(
            feat.float(),  # roi_align needs one dtype; autocast's own wrapper casts to fp32 too
            rois,
            self.output_size,
            spatial_scale=1.0 / stride,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        ).to(feat.dtype)
