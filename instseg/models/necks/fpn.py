"""Feature Pyramid Network (Lin et al., 2017) with mmdetection's arguments and key names."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from instseg.models.layers import ConvModule
from instseg.registry import MODELS

_EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')
_DEFAULT_UPSAMPLE_CFG = dict(mode='nearest')
_DEFAULT_INIT_CFG = dict(type='Xavier', layer='Conv2d', distribution='uniform')


@MODELS.register_module()
class FPN(BaseModule):
    """Top-down feature pyramid: one ``out_channels`` map per input level plus coarser extras.

    Each used input level gets a 1x1 lateral conv (``lateral_convs.{i}.conv``); coarser laterals
    are upsampled to the finer lateral's size and added; a 3x3 conv (``fpn_convs.{i}.conv``)
    smooths each sum. When ``num_outs`` exceeds the used levels, extra levels come from a
    stride-2 max pool (kernel 1) of the last output (``add_extra_convs=False``, Mask R-CNN's P6)
    or from stride-2 3x3 convs appended to ``fpn_convs``.

    Args:
        in_channels: channels of each input level, finest first.
        out_channels: channels of every output level.
        num_outs: number of output levels.
        start_level: first input level used. Defaults to 0.
        end_level: last input level used (inclusive); -1 means the last. Using fewer levels
            than given allows no extra levels. Defaults to -1.
        add_extra_convs: False (max pool), True (same as 'on_input'), or the source of the
            first extra conv: 'on_input' (last used input), 'on_lateral' (last lateral) or
            'on_output' (last output). Defaults to False.
        relu_before_extra_convs: apply ReLU before the second and later extra convs.
            Defaults to False.
        no_norm_on_lateral: leave the lateral convs without norm layer. Defaults to False.
        conv_cfg, norm_cfg, act_cfg: passed to every :class:`ConvModule`. Default to None
            (plain conv with bias, no norm, no activation).
        upsample_cfg: keyword arguments of ``F.interpolate``; without ``scale_factor`` the
            target size is the finer lateral's, so odd sizes work. Defaults to nearest.
        init_cfg: mmengine init config. Defaults to Xavier-uniform on every Conv2d.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = None,
        upsample_cfg: dict = _DEFAULT_UPSAMPLE_CFG,
        init_cfg: dict | list[dict] | None = _DEFAULT_INIT_CFG,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = list(in_channels)
        num_ins = len(in_channels)
        if not 0 <= start_level < num_ins:
            raise ValueError(f'FPN start_level must be in 0..{num_ins - 1}, got {start_level!r}')
        if end_level in (-1, num_ins - 1):
            backbone_end_level = num_ins
            if num_outs < num_ins - start_level:
                raise ValueError(
                    f'FPN num_outs={num_outs} is fewer than the {num_ins - start_level} input '
                    f'levels used (in_channels={in_channels}, start_level={start_level})'
                )
        else:
            if not start_level <= end_level < num_ins:
                raise ValueError(
                    f'FPN end_level must be -1 or in {start_level}..{num_ins - 1}, '
                    f'got {end_level!r}'
                )
            backbone_end_level = end_level + 1
            if num_outs != end_level - start_level + 1:
                raise ValueError(
                    f'FPN num_outs must be end_level - start_level + 1 = '
                    f'{end_level - start_level + 1} when end_level is not the last level, '
                    f'got {num_outs}'
                )
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs is not False and add_extra_convs not in _EXTRA_CONV_SOURCES:
            raise ValueError(
                f'FPN add_extra_convs must be a bool or one of {_EXTRA_CONV_SOURCES}, '
                f'got {add_extra_convs!r}'
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_ins = num_ins
        self.num_outs = num_outs
        self.start_level = start_level
        self.end_level = end_level
        self.backbone_end_level = backbone_end_level
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.upsample_cfg = dict(upsample_cfg)

        def conv(c_in: int, kernel: int, stride: int = 1, norm: dict | None = norm_cfg):
            return ConvModule(
                c_in,
                out_channels,
                kernel,
                stride=stride,
                padding=kernel // 2,
                conv_cfg=conv_cfg,
                norm_cfg=norm,
                act_cfg=act_cfg,
                inplace=False,
            )

        lateral_norm = None if no_norm_on_lateral else norm_cfg
        used = range(start_level, backbone_end_level)
        self.lateral_convs = nn.ModuleList(conv(in_channels[i], 1, norm=lateral_norm) for i in used)
        self.fpn_convs = nn.ModuleList(conv(out_channels, 3) for _ in used)
        num_extra = num_outs - len(used)
        if add_extra_convs:
            for i in range(num_extra):
                first_on_input = i == 0 and add_extra_convs == 'on_input'
                c_in = in_channels[backbone_end_level - 1] if first_on_input else out_channels
                self.fpn_convs.append(conv(c_in, 3, stride=2))

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Map ``len(in_channels)`` maps Tensor[B, in_channels[i], H_i, W_i] (finest first) to
        ``num_outs`` maps Tensor[B, out_channels, H'_j, W'_j]; each extra level halves the last
        size, rounding up."""
        if len(inputs) != self.num_ins:
            raise ValueError(
                f'FPN expects {self.num_ins} input levels (in_channels={self.in_channels}), '
                f'got {len(inputs)}'
            )
        laterals = [
            lateral_conv(inputs[self.start_level + i])
            for i, lateral_conv in enumerate(self.lateral_convs)
        ]
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                upsampled = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                size = laterals[i - 1].shape[2:]
                upsampled = F.interpolate(laterals[i], size=size, **self.upsample_cfg)
            # Out of place: an activation's backward still needs the lateral as it was.
            laterals[i - 1] = laterals[i - 1] + upsampled
        num_used = len(laterals)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(num_used)]
        if self.num_outs == num_used:
            return tuple(outs)
        if not self.add_extra_convs:
            for _ in range(self.num_outs - num_used):
                outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
            return tuple(outs)
        if self.add_extra_convs == 'on_input':
            source = inputs[self.backbone_end_level - 1]
        elif self.add_extra_convs == 'on_lateral':
            source = laterals[-1]
        else:
            source = outs[-1]
        outs.append(self.fpn_convs[num_used](source))
        for i in range(num_used + 1, self.num_outs):
            source = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
            outs.append(self.fpn_convs[i](source))
        return tuple(outs)
