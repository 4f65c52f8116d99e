"""ResNet and ResNeXt backbones: timm's networks under mmdetection's arguments and key names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import timm
import torch
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils import checkpoint as cp

from instseg.checkpoint.pretrained import init_backbone_weights
from instseg.models.layers import build_norm_layer
from instseg.registry import MODELS

_TIMM_NAMES = {18: 'resnet18', 34: 'resnet34', 50: 'resnet50', 101: 'resnet101', 152: 'resnet152'}
_BASIC_BLOCK_DEPTHS = (18, 34)
_STEM = ('conv1', 'bn1', 'act1', 'maxpool')
_DEFAULT_NORM_CFG = dict(type='BN', requires_grad=True)


def _timm_norm_layer(norm_cfg: dict) -> Callable[..., nn.Module]:
    """A ``norm_layer`` callable for timm that builds ``norm_cfg``'s layer for a channel count."""

    def norm_layer(num_features: int, device=None, dtype=None) -> nn.Module:
        layer = build_norm_layer(norm_cfg, num_features)[1]
        return layer.to(device=device, dtype=dtype) if device or dtype else layer

    return norm_layer


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet (and ResNeXt through ``groups``/``base_width``) returning one map per stage.

    The network is timm's (built with ``pretrained=False``; weights come only from ``init_cfg``);
    its modules are children of this one, so state-dict keys are mmdetection's and torchvision's
    (``conv1.weight``, ``bn1.running_mean``, ``layer2.0.downsample.0.weight``, ...). Norm layers
    keep the names ``bn1``/``bn2``/``bn3`` whatever ``norm_cfg`` says.

    Args:
        depth: 18, 34, 50, 101 or 152.
        num_stages: how many residual stages (``layer1``..) to build, 1-4. Defaults to 4.
        out_indices: stages to return, 0-based (0 is ``layer1``, stride 4), increasing.
            Defaults to (0, 1, 2, 3).
        frozen_stages: freeze the stem and ``layer1``..``layer{frozen_stages}`` (eval mode, no
            gradients); -1 freezes nothing. Defaults to -1.
        norm_cfg: norm layers, see :func:`~instseg.models.layers.build_norm_layer`.
            Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval: keep every BatchNorm in eval mode (running statistics fixed) in ``train()``.
            Defaults to True.
        style: only 'pytorch' (stride 2 in the 3x3 conv of a bottleneck) is supported.
        groups: ResNeXt cardinality (groups of the 3x3 conv). Defaults to 1.
        base_width: ResNeXt width per group; a bottleneck's 3x3 conv has
            ``floor(planes * base_width / 64) * groups`` channels. Defaults to 64.
        with_cp: recompute each residual block in the backward pass to save memory.
            Defaults to False.
        zero_init_residual: start each residual block's last norm layer at weight 0, so that
            every block starts as the identity (mmdetection's default, and timm's
            ``zero_init_last``). Only matters when training from scratch; torchvision's ResNet
            starts them at 1 (``False``). Defaults to True.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])`` loads a
            local torchvision, timm / Hugging Face (``.safetensors``) or mmdetection file.
            Defaults to None (timm's initialisation).

    Attributes:
        out_channels: channels of each returned map.
        strides: stride of each returned map relative to the input.
    """

    weight_family = 'resnet'

    def __init__(
        self,
        depth: int,
        num_stages: int = 4,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_cfg: dict = _DEFAULT_NORM_CFG,
        norm_eval: bool = True,
        style: str = 'pytorch',
        groups: int = 1,
        base_width: int = 64,
        with_cp: bool = False,
        zero_init_residual: bool = True,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth not in _TIMM_NAMES:
            raise ValueError(f'ResNet depth must be one of {sorted(_TIMM_NAMES)}, got {depth!r}')
        if style != 'pytorch':
            raise NotImplementedError(
                f"ResNet style {style!r} is not supported; only 'pytorch' "
                '(stride in the 3x3 conv) is'
            )
        if not 1 <= num_stages <= 4:
            raise ValueError(f'ResNet num_stages must be in 1..4, got {num_stages!r}')
        out_indices = tuple(out_indices)
        if (
            not out_indices
            or any(not 0 <= i < num_stages for i in out_indices)
            or list(out_indices) != sorted(set(out_indices))
        ):
            raise ValueError(
                f'ResNet out_indices must be increasing stage indices in 0..{num_stages - 1}, '
                f'got {out_indices!r}'
            )
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'ResNet frozen_stages must be in -1..{num_stages}, got {frozen_stages!r}'
            )
        if depth in _BASIC_BLOCK_DEPTHS and (groups != 1 or base_width != 64):
            raise ValueError(
                f'ResNet-{depth} is built from basic blocks, which take no groups/base_width '
                f'(got groups={groups}, base_width={base_width}); ResNeXt needs depth >= 50'
            )
        self.depth = depth
        self.num_stages = num_stages
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

        timm_name = _TIMM_NAMES[depth]
        net = timm.create_model(
            timm_name,
            pretrained=False,
            features_only=True,
            # timm's feature 0 is the stride-2 stem; its 1..4 are layer1..layer4.
            out_indices=tuple(range(1, num_stages + 1)),
            cardinality=groups,
            base_width=base_width,
            norm_layer=_timm_norm_layer(norm_cfg),
            zero_init_last=zero_init_residual,
        )
        names = [name for name, _ in net.named_children()]
        expected = [*_STEM, *self.res_layer_names]
        if names != expected:
            raise RuntimeError(
                f'timm {timm.__version__} builds {timm_name} with children {names}, '
                f'expected {expected}'
            )
        for name, child in net.named_children():
            self.add_module(name, child)
        channels, reductions = net.feature_info.channels(), net.feature_info.reduction()
        self.out_channels: list[int] = [channels[i] for i in out_indices]
        self.strides: list[int] = [reductions[i] for i in out_indices]
        self._freeze_stages()

    @property
    def res_layer_names(self) -> list[str]:
        """Names of the residual stages built: ``['layer1', ...]``."""
        return [f'layer{i + 1}' for i in range(self.num_stages)]

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.conv1, self.bn1]
        frozen += [getattr(self, name) for name in self.res_layer_names[: self.frozen_stages]]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> ResNet:
        """Set training mode, keeping frozen stages and (with ``norm_eval``) BatchNorms in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained file (classifier keys ignored); otherwise keep timm's
        initialisation."""
        init_backbone_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Map images Tensor[B, 3, H, W] to one Tensor[B, C_i, ceil(H/s_i), ceil(W/s_i)] per
        entry of ``out_indices`` (channels ``out_channels``, strides ``strides``)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        outs = []
        checkpointing = self.with_cp and self.training and torch.is_grad_enabled()
        for i, name in enumerate(self.res_layer_names):
            # Frozen stages keep no activations for backward, so recomputing them saves nothing.
            use_cp = checkpointing and i >= self.frozen_stages
            for block in getattr(self, name):
                x = cp.checkpoint(block, x, use_reentrant=False) if use_cp else block(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@MODELS.register_module()
class ResNeXt(ResNet):
    """ResNeXt: :class:`ResNet` with mmdetection's ResNeXt arguments (``groups=1``,
    ``base_width=4``); configs set ``groups``, e.g. ``depth=101, groups=32, base_width=4``.
    As in mmdetection, ``groups=1`` gives a plain ResNet whatever ``base_width`` says."""

    def __init__(self, depth: int, groups: int = 1, base_width: int = 4, **kwargs) -> None:
        if groups == 1:
            base_width = 64
        super().__init__(depth=depth, groups=groups, base_width=base_width, **kwargs)
