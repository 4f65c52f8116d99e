"""Swin Transformer backbone with mmdetection 3.x's arguments and state-dict keys."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import trunc_normal_
from torch import Tensor, nn
from torch.utils import checkpoint as cp

from instseg.checkpoint.pretrained import init_backbone_weights
from instseg.models.backbones.swin_layers import (
    PatchEmbed,
    PatchMerging,
    SwinBlock,
    shift_window_mask,
)
from instseg.registry import MODELS


class SwinBlockSequence(nn.Module):
    """One stage: ``depth`` blocks alternating plain and shifted windows, then optional merging.

    ``forward`` maps Tensor[B, H, W, C] to ``(stage_output, downsampled)``: the stage output
    Tensor[B, H, W, C] and the input of the next stage (the output itself without merging).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        feedforward_channels: int,
        depth: int,
        window_size: int,
        drop_path_rates: Sequence[float],
        downsample: PatchMerging | None,
        with_cp: bool = False,
        **block_kwargs,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            SwinBlock(
                embed_dims,
                num_heads,
                feedforward_channels,
                window_size=window_size,
                shift=i % 2 == 1,
                drop_path_rate=drop_path_rates[i],
                **block_kwargs,
            )
            for i in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.window_size
        mask = None
        if len(self.blocks) > 1 and w > 1:
            # One mask per input size, shared by the stage's shifted blocks.
            padded = (-(-x.shape[1] // w) * w, -(-x.shape[2] // w) * w)
            mask = shift_window_mask(*padded, w, w // 2, x.device)
        # Checkpoint wherever something needs gradients (frozen stages keep no activations).
        checkpointing = (
            self.with_cp
            and self.training
            and torch.is_grad_enabled()
            and (x.requires_grad or any(p.requires_grad for p in self.blocks.parameters()))
        )
        for block in self.blocks:
            if checkpointing:
                x = cp.checkpoint(block, x, mask, use_reentrant=False)
            else:
                x = block(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


@MODELS.register_module()
class SwinTransformer(BaseModule):
    """Swin Transformer returning NCHW maps at strides 4, 8, 16, 32 (``out_indices`` 0-3).

    Module and parameter names are mmdetection 3.x's (``patch_embed.projection``,
    ``stages.{i}.blocks.{j}.attn.w_msa.qkv``, ``stages.{i}.blocks.{j}.ffn.layers.0.0``,
    ``stages.{i}.downsample.reduction``, ``norm{i}``), so its Swin checkpoints load unconverted;
    the official release, timm and Hugging Face timm files are converted while loading
    (:mod:`~instseg.checkpoint.convert.backbones`). Any input size works: images are padded
    to the patch size, maps to window multiples inside each block (the shifted-window mask is
    computed per input size) and to even sizes before merging; outputs are cropped back, so map i
    has size ``ceil(H / strides[i])``.

    Swin-T: ``embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)``; Swin-S: depths
    ``(2, 2, 18, 2)``; Swin-B: ``embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)``.

    Args:
        pretrain_img_size: image size of pretraining; sets the grid of ``absolute_pos_embed``.
            Defaults to 224.
        in_channels: image channels. Defaults to 3.
        embed_dims: channels of stage 0; stage i has ``embed_dims * 2**i``. Defaults to 96.
        patch_size: side of the non-overlapping patches of the stem. Defaults to 4.
        window_size: attention window side. Defaults to 7.
        mlp_ratio: FFN hidden width over channels. Defaults to 4.
        depths: blocks per stage. Defaults to (2, 2, 6, 2).
        num_heads: attention heads per stage. Defaults to (3, 6, 12, 24).
        strides: stride of the stem then of each merging; must be ``(patch_size, 2, 2, ...)``.
        out_indices: stages to return, increasing. Defaults to (0, 1, 2, 3).
        qkv_bias: learn q, k, v biases. Defaults to True.
        qk_scale: attention logit scale. Defaults to None (head_dims ** -0.5).
        patch_norm: LayerNorm after the stem and inside merging. Defaults to True.
        drop_rate: dropout after position embedding, attention projection and in the FFN.
        attn_drop_rate: dropout on attention weights. Defaults to 0.
        drop_path_rate: stochastic depth, rising linearly to this over all blocks. Defaults to 0.1.
        use_abs_pos_embed: add a learned absolute position embedding (resized bicubically to
            the input's patch grid). Defaults to False.
        act_cfg: only ``dict(type='GELU')``.
        norm_cfg: only ``dict(type='LN')`` (optionally with ``eps``).
        with_cp: recompute each block in the backward pass to save activation memory.
            Defaults to False.
        pretrained: deprecated spelling of ``init_cfg=dict(type='Pretrained', checkpoint=...)``.
        convert_weights: mmdetection's flag for official-release files. instseg recognises the
            layout from the keys, so any supported file loads whatever it says. Defaults to False.
        frozen_stages: freeze the stem (0) and stages 0..frozen_stages-1 with their output
            norms (eval mode, no gradients); -1 freezes nothing. Defaults to -1.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])`` loads a local
            file of any supported layout; None initialises as mmdetection (truncated normal).

    Attributes:
        out_channels: channels of each returned map.
        strides: stride of each returned map relative to the input.
    """

    weight_family = 'swin'

    def __init__(
        self,
        pretrain_img_size: int | Sequence[int] = 224,
        in_channels: int = 3,
        embed_dims: int = 96,
        patch_size: int = 4,
        window_size: int = 7,
        mlp_ratio: float = 4,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        strides: Sequence[int] = (4, 2, 2, 2),
        out_indices: Sequence[int] = (0, 1, 2, 3),
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        patch_norm: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        use_abs_pos_embed: bool = False,
        act_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        with_cp: bool = False,
        pretrained: str | None = None,
        convert_weights: bool = False,
        frozen_stages: int = -1,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('SwinTransformer takes init_cfg or pretrained, not both')
            warnings.warn(
                'SwinTransformer(pretrained=...) is deprecated; use '
                "init_cfg=dict(type='Pretrained', checkpoint=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        num_stages = len(depths)
        norm_eps = _check_cfgs(act_cfg, norm_cfg)
        if len(num_heads) != num_stages or len(strides) != num_stages:
            raise ValueError(
                f'SwinTransformer depths {tuple(depths)}, num_heads {tuple(num_heads)} and '
                f'strides {tuple(strides)} must have one entry per stage'
            )
        if strides[0] != patch_size or any(s != 2 for s in strides[1:]):
            raise ValueError(
                f'SwinTransformer strides must be (patch_size={patch_size}, 2, 2, ...), '
                f'got {tuple(strides)}'
            )
        out_indices = tuple(out_indices)
        if not out_indices or list(out_indices) != sorted(set(out_indices)):
            raise ValueError(f'SwinTransformer out_indices must increase, got {out_indices}')
        if not 0 <= out_indices[0] <= out_indices[-1] < num_stages:
            raise ValueError(
                f'SwinTransformer out_indices must be in 0..{num_stages - 1}, got {out_indices}'
            )
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'SwinTransformer frozen_stages must be in -1..{num_stages}, got {frozen_stages}'
            )
        self.depths = tuple(depths)
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.convert_weights = convert_weights
        self.use_abs_pos_embed = use_abs_pos_embed
        self.num_features = [embed_dims * 2**i for i in range(num_stages)]
        self.out_channels: list[int] = [self.num_features[i] for i in out_indices]
        self.strides: list[int] = [patch_size * 2**i for i in out_indices]

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, patch_norm, norm_eps)
        if use_abs_pos_embed:
            size = (pretrain_img_size,) * 2 if isinstance(pretrain_img_size, int) else None
            size = size or tuple(pretrain_img_size)
            self.pos_grid = (size[0] // patch_size, size[1] // patch_size)
            self.absolute_pos_embed = nn.Parameter(
                torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], embed_dims)
            )
        self.drop_after_pos = nn.Dropout(drop_rate)

        rates = _linspace(drop_path_rate, sum(depths))
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            channels = self.num_features[i]
            merging = None
            if i < num_stages - 1:
                merging = PatchMerging(channels, 2 * channels, patch_norm, norm_eps)
            first = sum(depths[:i])
            self.stages.append(
                SwinBlockSequence(
                    channels,
                    num_heads[i],
                    int(mlp_ratio * channels),
                    depth,
                    window_size,
                    rates[first : first + depth],
                    merging,
                    with_cp=with_cp,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    norm_eps=norm_eps,
                )
            )
        for i in out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i], eps=norm_eps))
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen: list[nn.Module] = [self.patch_embed, self.drop_after_pos]
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        if self.use_abs_pos_embed:
            self.absolute_pos_embed.requires_grad = False

    def train(self, mode: bool = True) -> SwinTransformer:
        """Set training mode, keeping frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained file (any supported layout), or initialise from scratch
        as mmdetection: truncated normal (std 0.02) Linear weights and position tables."""
        init_backbone_weights(self, self._init_from_scratch)

    def _init_from_scratch(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for name, param in self.named_parameters():
            if name.endswith(('relative_position_bias_table', 'absolute_pos_embed')):
                trunc_normal_(param, std=0.02)

    def adapt_pretrained_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Fit converted weights to this model's window size and position grid.

        Relative position tables of another window size are resized bicubically and the
        (derived) relative position indices are this model's own, so Swin-B window-12 weights
        start a window-7 model as in mmdetection. Returns a new dict.
        """
        own = self.state_dict()
        state = dict(state)
        for key, target in own.items():
            if key.endswith('relative_position_index'):
                state[key] = target
            elif key.endswith('relative_position_bias_table') and key in state:
                source = state[key]
                if source.shape != target.shape and source.shape[1] == target.shape[1]:
                    state[key] = _resize_table(source, target.shape[0])
                    print_log(
                        f'{key}: resized {tuple(source.shape)} -> {tuple(target.shape)}',
                        logger='current',
                    )
        embed = state.get('absolute_pos_embed')
        if (
            self.use_abs_pos_embed
            and embed is not None
            and embed.shape != own['absolute_pos_embed'].shape
            and embed.ndim == 3
        ):
            side = int(round(embed.shape[1] ** 0.5))
            if side * side == embed.shape[1]:
                state['absolute_pos_embed'] = _resize_grid(embed, (side, side), self.pos_grid)
        return state

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Images Tensor[B, 3, H, W] -> one Tensor[B, out_channels[k], ceil(H/s_k), ceil(W/s_k)]
        per entry of ``out_indices`` (``s_k = strides[k]``)."""
        x = self.patch_embed(x)
        if self.use_abs_pos_embed:
            embed = _resize_grid(self.absolute_pos_embed, self.pos_grid, tuple(x.shape[1:3]))
            x = x + embed.view(1, *x.shape[1:])
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages[: self.out_indices[-1] + 1]):
            out, x = stage(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


def _check_cfgs(act_cfg: dict | None, norm_cfg: dict | None) -> float:
    """Validate mmdetection's ``act_cfg``/``norm_cfg`` (GELU and LayerNorm only); the LN eps."""
    if act_cfg is not None and dict(act_cfg) != dict(type='GELU'):
        raise ValueError(f"SwinTransformer supports act_cfg=dict(type='GELU') only, got {act_cfg}")
    norm_cfg = dict(norm_cfg or dict(type='LN'))
    if norm_cfg.pop('type', None) != 'LN' or set(norm_cfg) - {'eps'}:
        raise ValueError(f"SwinTransformer supports norm_cfg=dict(type='LN') only, got {norm_cfg}")
    return float(norm_cfg.get('eps', 1e-5))


def _linspace(end: float, count: int) -> list[float]:
    """``count`` values rising evenly from 0 to ``end`` (stochastic depth per block)."""
    return [end * i / (count - 1) if count > 1 else 0.0 for i in range(count)]


def _resize_table(table: Tensor, length: int) -> Tensor:
    """Relative position table Tensor[(2w-1)^2, heads] -> Tensor[length, heads], bicubic."""
    side, new_side = int(round(table.shape[0] ** 0.5)), int(round(length**0.5))
    grid = table.T.reshape(1, -1, side, side).float()
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
    return grid.reshape(-1, length).T.contiguous().to(table.dtype)


def _resize_grid(embed: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Position embedding Tensor[1, gh*gw, C] on ``grid`` -> Tensor[1, h*w, C] on ``size``."""
    if tuple(grid) == tuple(size):
        return embed
    maps = embed.reshape(1, grid[0], grid[1], -1).permute(0, 3, 1, 2)
    maps = F.interpolate(maps.float(), size=size, mode='bicubic', align_corners=False)
    return maps.flatten(2).transpose(1, 2).to(embed.dtype)
