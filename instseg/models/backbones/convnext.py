"""ConvNeXt backbone with mmdetection's (mmpretrain's) arguments and state-dict keys."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import DropPath, LayerNorm, LayerNorm2d, trunc_normal_
from torch import Tensor, nn
from torch.utils import checkpoint as cp

from instseg.checkpoint.pretrained import init_backbone_weights
from instseg.registry import MODELS

ARCH_SETTINGS: dict[str, dict[str, list[int]]] = {
    'tiny': dict(depths=[3, 3, 9, 3], channels=[96, 192, 384, 768]),
    'small': dict(depths=[3, 3, 27, 3], channels=[96, 192, 384, 768]),
    'base': dict(depths=[3, 3, 27, 3], channels=[128, 256, 512, 1024]),
    'large': dict(depths=[3, 3, 27, 3], channels=[192, 384, 768, 1536]),
}
_EPS = 1e-6  # LayerNorm epsilon of every ConvNeXt release


class ConvNeXtBlock(nn.Module):
    """``x + drop_path(gamma * pw2(gelu(pw1(norm(dw7x7(x))))))`` on Tensor[B, C, H, W].

    timm's ConvNeXt block under mmpretrain's names (``depthwise_conv``, ``norm``,
    ``pointwise_conv1``, ``pointwise_conv2``, ``gamma``); the pointwise layers are Linear layers
    on channels-last maps as in the official release.
    """

    def __init__(
        self, channels: int, drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-6
    ) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = LayerNorm(channels, eps=_EPS)
        self.pointwise_conv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pointwise_conv2 = nn.Linear(4 * channels, channels)
        self.gamma = (
            nn.Parameter(torch.full((channels,), float(layer_scale_init_value)))
            if layer_scale_init_value > 0
            else None
        )
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise_conv(x).permute(0, 2, 3, 1)
        y = self.pointwise_conv2(self.act(self.pointwise_conv1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


@MODELS.register_module()
class ConvNeXt(BaseModule):
    """ConvNeXt returning one LayerNorm-ed NCHW map per entry of ``out_indices`` (strides 4-32).

    Keys follow mmpretrain (``downsample_layers.{i}``, ``stages.{i}.{j}.depthwise_conv``,
    ``norm{i}``), which mmdetection's ConvNeXt configs use, so their checkpoints load unconverted;
    the official release and timm / Hugging Face files are converted while loading. Inputs of any
    size work: each downsampling pads the bottom/right to its stride, so map i has size
    ``ceil(H / strides[i])``.

    Args:
        arch: 'tiny', 'small', 'base', 'large' or ``dict(depths=[...], channels=[...])``.
            Defaults to 'tiny'.
        in_channels: image channels. Defaults to 3.
        stem_patch_size: kernel and stride of the stem convolution. Defaults to 4.
        drop_path_rate: stochastic depth, rising linearly to this over all blocks. Defaults to 0.
        layer_scale_init_value: initial per-channel scale ``gamma`` of each block's residual
            branch; 0 disables it. Defaults to 1e-6.
        out_indices: stages to return, increasing. Defaults to (0, 1, 2, 3).
        frozen_stages: freeze ``downsample_layers`` and ``stages`` 0..frozen_stages-1 (eval mode,
            no gradients); 0 freezes nothing (mmpretrain's convention). Defaults to 0.
        gap_before_final_norm: average-pool each returned map before its norm (classification
            style, maps become Tensor[B, C]). Defaults to False.
        with_cp: recompute each block in the backward pass to save activation memory.
            Defaults to False.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])`` loads a
            local file of any supported layout; None initialises as mmpretrain (truncated normal
            std 0.02 for convolutions and Linear layers).

    Attributes:
        out_channels: channels of each returned map.
        strides: stride of each returned map relative to the input.
    """

    weight_family = 'convnext'

    def __init__(
        self,
        arch: str | dict = 'tiny',
        in_channels: int = 3,
        stem_patch_size: int = 4,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = 0,
        gap_before_final_norm: bool = False,
        with_cp: bool = False,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in ARCH_SETTINGS:
                raise ValueError(
                    f'ConvNeXt arch must be one of {list(ARCH_SETTINGS)}, got {arch!r}'
                )
            arch = ARCH_SETTINGS[arch]
        if not {'depths', 'channels'} <= set(arch) or len(arch['depths']) != len(arch['channels']):
            raise ValueError(
                f'ConvNeXt arch dict needs "depths" and "channels" of equal length, got {arch}'
            )
        self.depths = list(arch['depths'])
        self.channels = list(arch['channels'])
        num_stages = len(self.depths)
        out_indices = tuple(out_indices)
        if (
            not out_indices
            or list(out_indices) != sorted(set(out_indices))
            or not 0 <= out_indices[0] <= out_indices[-1] < num_stages
        ):
            raise ValueError(
                f'ConvNeXt out_indices must increase within 0..{num_stages - 1}, got {out_indices}'
            )
        if not 0 <= frozen_stages <= num_stages:
            raise ValueError(
                f'ConvNeXt frozen_stages must be in 0..{num_stages}, got {frozen_stages}'
            )
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.gap_before_final_norm = gap_before_final_norm
        self.with_cp = with_cp
        self.out_channels: list[int] = [self.channels[i] for i in out_indices]
        self.strides: list[int] = [stem_patch_size * 2**i for i in out_indices]

        stem = nn.Conv2d(in_channels, self.channels[0], stem_patch_size, stride=stem_patch_size)
        self.downsample_layers = nn.ModuleList([nn.Sequential(stem, LayerNorm2d(self.channels[0]))])
        for i in range(1, num_stages):
            self.downsample_layers.append(
                nn.Sequential(
                    LayerNorm2d(self.channels[i - 1], eps=_EPS),
                    nn.Conv2d(self.channels[i - 1], self.channels[i], 2, stride=2),
                )
            )
        count = sum(self.depths)
        rates = [drop_path_rate * i / max(count - 1, 1) for i in range(count)]
        self.stages = nn.ModuleList()
        for i, (depth, channels) in enumerate(zip(self.depths, self.channels, strict=True)):
            first = sum(self.depths[:i])
            blocks = [
                ConvNeXtBlock(channels, rates[first + j], layer_scale_init_value)
                for j in range(depth)
            ]
            self.stages.append(nn.Sequential(*blocks))
            if i in out_indices:
                self.add_module(f'norm{i}', LayerNorm2d(channels, eps=_EPS))
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages):
            for module in (self.downsample_layers[i], self.stages[i]):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> ConvNeXt:
        """Set training mode, keeping frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained file (any supported layout), or initialise from scratch
        as mmpretrain: truncated normal (std 0.02) convolutions and Linear layers, zero biases."""
        init_backbone_weights(self, self._init_from_scratch)

    def _init_from_scratch(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Images Tensor[B, 3, H, W] -> one Tensor[B, out_channels[k], ceil(H/s_k), ceil(W/s_k)]
        per entry of ``out_indices`` (Tensor[B, out_channels[k]] with ``gap_before_final_norm``)."""
        outs = []
        checkpointing = self.with_cp and self.training and torch.is_grad_enabled()
        for i, stage in enumerate(self.stages[: self.out_indices[-1] + 1]):
            downsample = self.downsample_layers[i]
            stride = downsample[0].stride[0] if i == 0 else downsample[1].stride[0]
            x = downsample(F.pad(x, (0, -x.shape[-1] % stride, 0, -x.shape[-2] % stride)))
            # Frozen stages keep no activations for backward, so recomputing them saves nothing.
            use_cp = checkpointing and i >= self.frozen_stages
            for block in stage:
                x = cp.checkpoint(block, x, use_reentrant=False) if use_cp else block(x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    outs.append(norm(x.mean((2, 3), keepdim=True)).flatten(1))
                else:
                    outs.append(norm(x))
        return tuple(outs)
