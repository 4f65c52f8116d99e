"""Anchors on a feature pyramid, with mmdetection 3.x semantics.

Box convention (shared by all of ``instseg.models.task_modules``): a box is ``(x1, y1, x2, y2)`` in
continuous pixel coordinates of the network input, and its width is ``x2 - x1`` (no ``+ 1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from instseg.registry import TASK_UTILS


def _pair(value: int | float | Sequence[int | float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return (value, value)
    if len(value) != 2:
        raise ValueError(
            f'AnchorGenerator: each of {name} must be a number or a (w, h) pair, got {value!r}'
        )
    return (value[0], value[1])


@TASK_UTILS.register_module()
class AnchorGenerator:
    """Dense anchors for each level of a feature pyramid.

    Level ``i`` has a base set of ``A = len(ratios) * len(scales)`` anchors centred on
    ``(center_offset * base_size, center_offset * base_size)`` (or on ``centers[i]``), where
    ``base_size`` defaults to the level's stride. Anchor ``k`` of the base set has width
    ``base_size * scale / sqrt(ratio)`` and height ``base_size * scale * sqrt(ratio)`` (ratio: h/w),
    with ``k = ratio_i * num_scales + scale_j`` when ``scale_major`` (else
    ``scale_j * num_ratios + ratio_i``). The base set is shifted by ``(x * stride_w, y * stride_h)``
    for every feature location; the anchors of a level come out location-major: index
    ``(y * W + x) * A + k``.

    Args:
        strides: One stride per level, a number or a ``(stride_w, stride_h)`` pair.
        ratios: Height / width ratios shared by all levels.
        scales: Anchor scales relative to the base size. Give either ``scales`` or both
            ``octave_base_scale`` and ``scales_per_octave``.
        base_sizes: Base size per level. Defaults to the smaller side of each stride.
        scale_major: Order of the base anchors, see above. Defaults to True.
        octave_base_scale: Scales become ``octave_base_scale * 2 ** (i / scales_per_octave)``.
        scales_per_octave: Number of scales per octave.
        centers: Explicit ``(x, y)`` centre of the base set per level; needs ``center_offset == 0``.
        center_offset: Centre of the base set as a fraction of the base size, in [0, 1].
        round_base_anchors: Round the base set's coordinates to integers, as torchvision's
            ``AnchorGenerator`` does (its 0.5-ratio anchor at stride 4 is [-23, -11, 23, 11],
            not [-22.63, -11.31, 22.63, 11.31]). Defaults to False.
    """

    def __init__(
        self,
        strides: Sequence[int | float | Sequence[int | float]],
        ratios: Sequence[float],
        scales: Sequence[float] | None = None,
        base_sizes: Sequence[int | float] | None = None,
        scale_major: bool = True,
        octave_base_scale: float | None = None,
        scales_per_octave: int | None = None,
        centers: Sequence[tuple[float, float]] | None = None,
        center_offset: float = 0.0,
        round_base_anchors: bool = False,
    ) -> None:
        if not 0.0 <= center_offset <= 1.0:
            raise ValueError(
                f'AnchorGenerator: center_offset must be in [0, 1], got {center_offset}'
            )
        if centers is not None and center_offset != 0.0:
            raise ValueError('AnchorGenerator: give centers or a non-zero center_offset, not both')
        if centers is not None and len(centers) != len(strides):
            raise ValueError(f'AnchorGenerator: {len(centers)} centers for {len(strides)} strides')
        self.strides = [_pair(s, 'strides') for s in strides]
        self.base_sizes = [min(s) for s in self.strides] if base_sizes is None else list(base_sizes)
        if len(self.base_sizes) != len(self.strides):
            raise ValueError(
                f'AnchorGenerator: {len(self.base_sizes)} base_sizes for '
                f'{len(self.strides)} strides'
            )

        octave = octave_base_scale is not None and scales_per_octave is not None
        if octave == (scales is not None):
            raise ValueError(
                'AnchorGenerator: give either scales or both octave_base_scale and '
                'scales_per_octave'
            )
        if scales is None:
            scales = [
                octave_base_scale * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)
            ]
        if len(ratios) == 0 or len(scales) == 0:
            raise ValueError('AnchorGenerator: ratios and scales must not be empty')
        self.scales = torch.tensor(scales, dtype=torch.float32)
        self.ratios = torch.tensor(ratios, dtype=torch.float32)
        self.scale_major = scale_major
        self.centers = centers
        self.center_offset = center_offset
        self.round_base_anchors = round_base_anchors
        self.base_anchors = [
            self._base_anchors(size, None if centers is None else centers[i])
            for i, size in enumerate(self.base_sizes)
        ]

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """Number of anchors per feature location, per level."""
        return [anchors.shape[0] for anchors in self.base_anchors]

    def _base_anchors(self, base_size: float, center: tuple[float, float] | None) -> Tensor:
        """Base anchor set ``[A, 4]`` (fp32, CPU) of one level."""
        if center is None:
            cx = cy = self.center_offset * base_size
        else:
            cx, cy = center
        h_ratios = self.ratios.sqrt()
        w_ratios = 1.0 / h_ratios
        if self.scale_major:
            ws = (base_size * w_ratios[:, None] * self.scales[None, :]).reshape(-1)
            hs = (base_size * h_ratios[:, None] * self.scales[None, :]).reshape(-1)
        else:
            ws = (base_size * self.scales[:, None] * w_ratios[None, :]).reshape(-1)
            hs = (base_size * self.scales[:, None] * h_ratios[None, :]).reshape(-1)
        anchors = torch.stack([cx - 0.5 * ws, cy - 0.5 * hs, cx + 0.5 * ws, cy + 0.5 * hs], dim=-1)
        return anchors.round() if self.round_base_anchors else anchors

    def _check_sizes(self, featmap_sizes: Sequence[tuple[int, int]]) -> None:
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(
                f'AnchorGenerator: got {len(featmap_sizes)} feature map sizes for '
                f'{self.num_levels} levels'
            )

    def single_level_grid_priors(
        self,
        featmap_size: tuple[int, int],
        level_idx: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = 'cpu',
    ) -> Tensor:
        """Anchors ``[H * W * A, 4]`` of one level for a feature map of size ``(H, W)``."""
        feat_h, feat_w = featmap_size
        stride_w, stride_h = self.strides[level_idx]
        base = self.base_anchors[level_idx].to(device=device, dtype=torch.float32)
        # Shifts are built in fp32 so that large coordinates stay exact before the final cast.
        shift_x = torch.arange(feat_w, device=device, dtype=torch.float32) * stride_w
        shift_y = torch.arange(feat_h, device=device, dtype=torch.float32) * stride_h
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
        shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
        return (shifts + base[None]).reshape(-1, 4).to(dtype)

    def grid_priors(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = 'cpu',
    ) -> list[Tensor]:
        """Anchors of every level: a list of ``[H_i * W_i * A_i, 4]`` tensors."""
        self._check_sizes(featmap_sizes)
        return [
            self.single_level_grid_priors(tuple(size), i, dtype=dtype, device=device)
            for i, size in enumerate(featmap_sizes)
        ]

    def valid_flags(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        pad_shape: Sequence[int],
        device: torch.device | str = 'cpu',
    ) -> list[Tensor]:
        """Per level a BoolTensor ``[H_i * W_i * A_i]``: True where the anchor's location lies
        inside the image's padded extent ``(ceil(pad_h / stride_h), ceil(pad_w / stride_w))``.

        ``pad_shape`` is ``(h, w)`` (extra trailing entries are ignored) of one image before it was
        padded further to the batch shape.
        """
        self._check_sizes(featmap_sizes)
        pad_h, pad_w = pad_shape[:2]
        flags = []
        for i, (feat_h, feat_w) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[i]
            valid_h = min(math.ceil(pad_h / stride_h), feat_h)
            valid_w = min(math.ceil(pad_w / stride_w), feat_w)
            valid_y = torch.arange(feat_h, device=device) < valid_h
            valid_x = torch.arange(feat_w, device=device) < valid_w
            valid = valid_y[:, None] & valid_x[None, :]
            flags.append(
                valid[:, :, None].expand(feat_h, feat_w, self.num_base_priors[i]).reshape(-1)
            )
        return flags

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(strides={self.strides}, ratios={self.ratios.tolist()}, '
            f'scales={self.scales.tolist()}, base_sizes={self.base_sizes}, '
            f'scale_major={self.scale_major}, center_offset={self.center_offset})'
        )
