"""Key converters from published backbone weights to instseg's backbone names.

instseg's backbones use mmdetection 3.x / mmpretrain names (``SwinTransformer``: ``stages.{i}...``,
``ConvNeXt``: ``downsample_layers``/``stages``/``norm{i}``, ``ResNet``: torchvision's), so those
checkpoints need no conversion. The functions here map the other layouts users hold on disk
(the official releases and timm's; :mod:`instseg.checkpoint.detect` tells them apart).

All functions take and return flat ``dict[str, Tensor]`` without a ``backbone.`` prefix and never
modify their input.
"""

from __future__ import annotations

import re

from torch import Tensor, nn

from instseg.checkpoint.detect import FORMATS_BY_FAMILY, detect_backbone_format
from instseg.checkpoint.read import example_keys


def _num_stages(keys: list[str], pattern: str) -> int:
    return 1 + max(int(m[1]) for k in keys if (m := re.match(pattern, k)))


def _unfold_order(value: Tensor) -> Tensor:
    """Merging weights over 4C inputs: official neighbour-major order ``(0,0), (1,0), (0,1),
    (1,1)`` x C to mmdetection's channel-major C x ``(0,0), (0,1), (1,0), (1,1)`` (dy, dx)."""
    leading = value.shape[:-1]
    grouped = value.reshape(*leading, 4, value.shape[-1] // 4)[..., [0, 2, 1, 3], :]
    return grouped.transpose(-1, -2).reshape(value.shape).contiguous()


def _convert_swin(state: dict[str, Tensor], merging_offset: int) -> dict[str, Tensor]:
    """Official (``merging_offset=0``) or timm (1) Swin keys -> ours; see the public functions."""
    last = _num_stages(list(state), r'layers\.(\d+)\.') - 1
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith('head.') or key.endswith('attn_mask'):
            continue
        if m := re.match(r'layers\.(\d+)\.downsample\.(.*)', key):
            key = f'stages.{int(m[1]) - merging_offset}.downsample.{m[2]}'
            value = _unfold_order(value)
        elif m := re.match(r'layers\.(\d+)\.blocks\.(\d+)\.(.*)', key):
            rest = m[3].replace('attn.', 'attn.w_msa.', 1)
            rest = rest.replace('mlp.fc1.', 'ffn.layers.0.0.').replace('mlp.fc2.', 'ffn.layers.1.')
            key = f'stages.{m[1]}.blocks.{m[2]}.{rest}'
        elif key.startswith('patch_embed.proj.'):
            key = key.replace('patch_embed.proj.', 'patch_embed.projection.', 1)
        elif key.startswith('norm.'):
            # The classifier's final LayerNorm saw exactly the last stage's tokens: it starts that
            # stage's output norm (the official detection code leaves it unused).
            key = f'norm{last}.{key[5:]}'
        out[key] = value
    return out


def convert_swin_official(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official Swin keys (``layers.N.blocks.M.attn.qkv``, ``patch_embed.proj``, merging at the end
    of stage N) -> :class:`SwinTransformer` keys.

    ``attn.`` becomes ``attn.w_msa.``, ``mlp.fc1/fc2`` ``ffn.layers.0.0/1``, merging weights are
    permuted to the channel-major order of :class:`PatchMerging`, the final ``norm`` becomes the
    last stage's output norm; ``head.*`` and the ``attn_mask`` buffers are dropped.
    """
    return _convert_swin(state, merging_offset=0)


def convert_convnext_official(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ConvNeXt keys (``stages.N.M.dwconv``, ``pwconv1``, ``pwconv2``, ``gamma``,
    ``downsample_layers``) -> :class:`ConvNeXt` keys (mmpretrain's ``depthwise_conv``,
    ``pointwise_conv1``, ``pointwise_conv2``); the classifier's ``norm`` becomes the last stage's
    output norm (as mmpretrain converts it), ``head.*`` is dropped."""
    last = _num_stages(list(state), r'downsample_layers\.(\d+)\.') - 1
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith('head.'):
            continue
        if key.startswith('norm.'):
            key = f'norm{last}.{key[5:]}'
        key = key.replace('.dwconv.', '.depthwise_conv.')
        key = key.replace('.pwconv1.', '.pointwise_conv1.').replace(
            '.pwconv2.', '.pointwise_conv2.'
        )
        out[key] = value
    return out


_TIMM_CONVNEXT_BLOCK = {
    'conv_dw.': 'depthwise_conv.',
    'mlp.fc1.': 'pointwise_conv1.',
    'mlp.fc2.': 'pointwise_conv2.',
}


def _convert_convnext_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    last = _num_stages(list(state), r'stages\.(\d+)\.') - 1
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith('head.fc.'):
            continue
        if m := re.match(r'stem\.(\d+)\.(.*)', key):
            key = f'downsample_layers.0.{m[1]}.{m[2]}'
        elif m := re.match(r'stages\.(\d+)\.downsample\.(\d+)\.(.*)', key):
            key = f'downsample_layers.{m[1]}.{m[2]}.{m[3]}'
        elif m := re.match(r'stages\.(\d+)\.blocks\.(\d+)\.(.*)', key):
            rest = m[3]
            for old, new in _TIMM_CONVNEXT_BLOCK.items():
                if rest.startswith(old):
                    rest = new + rest[len(old) :]
                    # timm's conv_mlp variants hold the pointwise layers as 1x1 convolutions.
                    if old.startswith('mlp.') and value.ndim == 4:
                        value = value.flatten(1)
            key = f'stages.{m[1]}.{m[2]}.{rest}'
        elif key.startswith('head.norm.'):
            key = f'norm{last}.{key[len("head.norm.") :]}'
        out[key] = value
    return out


def _convert_timm_features(state: dict[str, Tensor], backbone: nn.Module) -> dict[str, Tensor]:
    """Keys of a whole timm model -> the keys of its ``features_only`` wrapper in ``backbone``.

    timm's feature wrappers flatten top-level Sequentials (``blocks.1`` -> ``blocks_1``) or keep
    the model as ``.model``; keys the wrapper does not hold (the classifier) stay as they are,
    to be reported as unexpected.
    """
    own = set(backbone.state_dict())
    prefix = 'timm_model.'
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        first, _, rest = key.partition('.')
        second, _, tail = rest.partition('.')
        candidates = [key, prefix + key, f'{prefix}model.{key}']
        if tail:
            candidates.append(f'{prefix}{first}_{second}.{tail}')
        out[next((c for c in candidates if c in own), key)] = value
    return out


def convert_timm(state: dict[str, Tensor], backbone: nn.Module) -> dict[str, Tensor]:
    """timm / Hugging Face ``timm/*`` weights (current timm layout) -> ``backbone``'s keys.

    ``backbone`` is an instseg :class:`SwinTransformer`, :class:`ConvNeXt`, :class:`ResNet` or
    :class:`TimmBackbone` (told apart by its ``weight_family``); the state dict is that of the
    whole timm classification model (``timm.create_model(name).state_dict()``).
    """
    family = getattr(backbone, 'weight_family', None)
    if family == 'swin':
        return _convert_swin(state, merging_offset=1)
    if family == 'convnext':
        return _convert_convnext_timm(state)
    if family == 'resnet':
        return {k: v for k, v in state.items() if not k.startswith('fc.')}
    if family == 'timm':
        return _convert_timm_features(state, backbone)
    raise TypeError(
        f'convert_timm: {type(backbone).__name__} is not an instseg backbone '
        "(weight_family 'swin', 'convnext', 'resnet' or 'timm')"
    )


def convert_for_backbone(
    state: dict[str, Tensor], backbone: nn.Module, source: str = 'state dict'
) -> dict[str, Tensor]:
    """Detect the layout of ``state`` and convert it to ``backbone``'s keys.

    Raises ValueError naming ``source`` (the file), the layout found and example keys when the
    layout is unknown or belongs to another kind of backbone.
    """
    family = getattr(backbone, 'weight_family', None)
    if family == 'timm':
        return convert_timm(state, backbone)
    if family not in FORMATS_BY_FAMILY:
        raise TypeError(f'{type(backbone).__name__} has no weight_family instseg knows')
    fmt = detect_backbone_format(state)
    if fmt not in FORMATS_BY_FAMILY[family]:
        found = 'an unknown layout' if fmt == 'unknown' else f'layout {fmt!r}'
        raise ValueError(
            f'{source}: {found} does not fit a {type(backbone).__name__} (it takes '
            f'{", ".join(FORMATS_BY_FAMILY[family])}); example keys: {example_keys(state)}'
        )
    if fmt == 'swin_official':
        return convert_swin_official(state)
    if fmt == 'convnext_official':
        return convert_convnext_official(state)
    if fmt in ('swin_timm', 'convnext_timm', 'resnet'):
        return convert_timm(state, backbone)
    return dict(state)
