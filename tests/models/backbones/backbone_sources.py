"""Source weights for the backbone tests, made with timm (randomly initialised, nothing downloaded).

"Official" release files are written by renaming timm's keys back to the layout Microsoft's Swin
and Meta's ConvNeXt releases use; timm's own ``checkpoint_filter_fn`` does the opposite renaming
when it loads those releases, so the renamed dicts hold the same keys, shapes and buffers:

Swin (``swin_tiny_patch4_window7_224.pth``, weights under ``'model'``):
    ``layers.{i}.downsample.*`` -> ``layers.{i-1}.downsample.*`` (the release merges patches at the
    end of a stage, timm at the start of the next), ``head.fc.*`` -> ``head.*``, plus the release's
    buffers ``layers.{i}.blocks.{j}.attn.relative_position_index`` and, in shifted blocks,
    ``layers.{i}.blocks.{j}.attn_mask``, copied from timm's modules.
ConvNeXt (``convnext_tiny_1k_224.pth``, weights under ``'model'``):
    ``stem.{k}`` -> ``downsample_layers.0.{k}``, ``stages.{i}.downsample.{k}`` ->
    ``downsample_layers.{i}.{k}``, ``stages.{i}.blocks.{j}.conv_dw`` -> ``stages.{i}.{j}.dwconv``,
    ``mlp.fc1``/``mlp.fc2`` -> ``pwconv1``/``pwconv2``, ``head.norm`` -> ``norm``, ``head.fc`` ->
    ``head``.
"""

from __future__ import annotations

import re

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A Swin-T with fewer channels and window 4. Every stage's grid at SWIN_SIZE (32x64 ... 4x8) is
# a multiple of the window and at least as large, where timm's conventions (it shifts before
# padding and shrinks windows on small maps) coincide with the release's and mmdetection's.
TIMM_SWIN_KW = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4)
SWIN_KW = dict(
    embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4, drop_path_rate=0.0
)
SWIN_SIZE = (128, 256)

TIMM_CONVNEXT_KW = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), ls_init_value=0.5)
CONVNEXT_ARCH = dict(depths=[1, 1, 2, 1], channels=[16, 32, 64, 128])


def timm_swin(**kwargs) -> nn.Module:
    """timm's Swin-T (shrunk), accepting any input size, with distinct random weights."""
    model = timm.create_model(
        'swin_tiny_patch4_window7_224',
        pretrained=False,
        img_size=SWIN_SIZE,
        strict_img_size=False,
        always_partition=True,
        **{**TIMM_SWIN_KW, **kwargs},
    )
    _randomise_norms(model)
    return model.eval()


def timm_convnext() -> nn.Module:
    model = timm.create_model('convnext_tiny', pretrained=False, **TIMM_CONVNEXT_KW)
    _randomise_norms(model)
    return model.eval()


def _randomise_norms(model: nn.Module) -> None:
    """LayerNorms start at (1, 0); random affine parameters make a swapped norm visible."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)


def official_swin_state(model: nn.Module) -> dict[str, Tensor]:
    """timm Swin weights renamed to the official release's layout (see the module docstring)."""
    state: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if m := re.match(r'layers\.(\d+)\.downsample\.(.*)', key):
            key = f'layers.{int(m[1]) - 1}.downsample.{m[2]}'
        key = key.replace('head.fc.', 'head.')
        state[key] = value.clone()
    for i, stage in enumerate(model.layers):
        for j, block in enumerate(stage.blocks):
            state[f'layers.{i}.blocks.{j}.attn.relative_position_index'] = (
                block.attn.relative_position_index.clone()
            )
            if j % 2 == 1:
                state[f'layers.{i}.blocks.{j}.attn_mask'] = block.get_attn_mask(
                    torch.zeros(1, *_grid(i), 1)
                )
    return state


def _grid(stage: int) -> tuple[int, int]:
    return SWIN_SIZE[0] // 4 // 2**stage, SWIN_SIZE[1] // 4 // 2**stage


def official_convnext_state(model: nn.Module) -> dict[str, Tensor]:
    """timm ConvNeXt weights renamed to the official release's layout (module docstring)."""
    state: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        key = re.sub(r'^stem\.', 'downsample_layers.0.', key)
        key = re.sub(r'^stages\.(\d+)\.downsample\.', r'downsample_layers.\1.', key)
        key = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.\2.', key)
        key = key.replace('.conv_dw.', '.dwconv.')
        key = key.replace('.mlp.fc1.', '.pwconv1.').replace('.mlp.fc2.', '.pwconv2.')
        key = key.replace('head.norm.', 'norm.').replace('head.fc.', 'head.')
        state[key] = value.clone()
    return state


def timm_features(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The un-normalised NCHW output of every stage of a timm Swin or ConvNeXt."""
    with torch.no_grad():
        return model.forward_intermediates(x, intermediates_only=True, norm=False)


def with_out_norms(backbone: nn.Module, feats: list[Tensor]) -> list[Tensor]:
    """Stage outputs through ``backbone``'s output LayerNorms ``norm{i}``: what it should return."""
    outs = []
    for i, feat in zip(backbone.out_indices, feats, strict=True):
        norm = getattr(backbone, f'norm{i}')
        nhwc = feat.permute(0, 2, 3, 1)
        nhwc = F.layer_norm(nhwc, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        outs.append(nhwc.permute(0, 3, 1, 2).detach())
    return outs


def assert_features_equal(ours: tuple[Tensor, ...], expected: list[Tensor]) -> None:
    """Same shapes and values within float32 round-off of a few thousand accumulations."""
    assert [o.shape for o in ours] == [e.shape for e in expected]
    for our, exp in zip(ours, expected, strict=True):
        torch.testing.assert_close(our, exp, atol=2e-5, rtol=1e-4)
