"""Which library wrote a state dict, told from its key names.

Detector formats (:func:`detect_format`):

- ``'mmdet'``: mmdetection 2.x / 3.x detectors and instseg's own checkpoints (Mask R-CNN,
  Cascade Mask R-CNN; ResNet, or Swin / ConvNeXt under official or mmdetection names).
- ``'torchvision'``: torchvision ``maskrcnn_resnet50_fpn`` and ``maskrcnn_resnet50_fpn_v2``.
- ``'swin'`` / ``'convnext'``: the official Swin Transformer / ConvNeXt releases (a backbone only).
- ``'backbone'``: a backbone already under instseg's names (ResNet from torchvision or
  mmdetection, Swin or ConvNeXt from mmdetection / mmpretrain).

Backbone layouts (:func:`detect_backbone_format`, keys without a ``backbone.`` prefix):

==========================  ===============================================================
layout                      recognised by
==========================  ===============================================================
``swin_official``           ``layers.N.blocks...``, merging at the END of stage N (``layers.0.
                            downsample``); Microsoft's release and Swin-Transformer-Object-Detection
``swin_timm``               ``layers.N.blocks...``, merging at the START of stage N (timm >= 0.6,
                            Hugging Face ``timm/swin_*``)
``swin_mmdet``              ``stages.N.blocks.M.attn.w_msa...`` (ours)
``convnext_official``       ``downsample_layers`` + ``dwconv``/``pwconv1`` (Meta's release)
``convnext_timm``           ``stem.0`` + ``stages.N.blocks.M.conv_dw`` (timm, Hugging Face)
``convnext_mmpretrain``     ``downsample_layers`` + ``depthwise_conv`` (ours)
``resnet``                  ``conv1`` + ``layer1...`` (torchvision, timm, mmdetection: ours)
==========================  ===============================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from instseg.checkpoint.read import example_keys

# Formats whose keys are a backbone's alone (no ``backbone.`` prefix).
BACKBONE_FORMATS = ('swin', 'convnext', 'backbone')
FORMATS = ('mmdet', 'torchvision', *BACKBONE_FORMATS)
# The layouts each kind of instseg backbone (its ``weight_family``) can convert.
FORMATS_BY_FAMILY: dict[str, tuple[str, ...]] = {
    'swin': ('swin_mmdet', 'swin_official', 'swin_timm'),
    'convnext': ('convnext_mmpretrain', 'convnext_official', 'convnext_timm'),
    'resnet': ('resnet',),
}
# Backbone layouts that a whole-checkpoint conversion handles -> its formats.
_BACKBONE_LAYOUTS = {
    'swin_official': 'swin',
    'convnext_official': 'convnext',
    'swin_mmdet': 'backbone',
    'convnext_mmpretrain': 'backbone',
    'resnet': 'backbone',
}
MMDET_PREFIXES = ('backbone.', 'neck.', 'rpn_head.', 'roi_head.')
TORCHVISION_PREFIXES = ('backbone.body.', 'backbone.fpn.', 'rpn.head.', 'roi_heads.')


def is_torchvision_detector(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` has torchvision's ``GeneralizedRCNN`` key names."""
    return any(key.startswith(TORCHVISION_PREFIXES) for key in state)


def is_mmdet_detector(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` has mmdetection's top-level module names."""
    return any(key.startswith(MMDET_PREFIXES) for key in state)


def _any(keys: list[str], pattern: str) -> bool:
    regex = re.compile(pattern)
    return any(regex.search(key) for key in keys)


def detect_backbone_format(state: Mapping[str, Tensor]) -> str:
    """The layout of a backbone state dict (keys without a ``backbone.`` prefix): one of the
    layouts in this module's table, or ``'unknown'``."""
    keys = list(state)
    if (
        _any(keys, r'^stages\.\d+\.blocks\.\d+\.attn\.w_msa\.')
        or 'patch_embed.projection.weight' in state
    ):
        return 'swin_mmdet'
    if _any(keys, r'^layers\.\d+\.blocks\.\d+\.attn\.qkv\.'):
        merging = {int(m[1]) for k in keys if (m := re.match(r'layers\.(\d+)\.downsample\.', k))}
        if merging:
            return 'swin_official' if 0 in merging else 'swin_timm'
        # A single-stage model: the official files carry the index buffers, timm's do not.
        return 'swin_official' if _any(keys, r'relative_position_index$') else 'swin_timm'
    if 'downsample_layers.0.0.weight' in state:
        if _any(keys, r'\.depthwise_conv\.'):
            return 'convnext_mmpretrain'
        if _any(keys, r'\.dwconv\.'):
            return 'convnext_official'
    if 'stem.0.weight' in state and _any(keys, r'^stages\.\d+\.blocks\.\d+\.conv_dw\.'):
        return 'convnext_timm'
    if 'conv1.weight' in state and _any(keys, r'^layer1\.'):
        return 'resnet'
    return 'unknown'


def detect_format(state: Mapping[str, Tensor], source: str = 'checkpoint') -> str:
    """One of :data:`FORMATS` from the key names of ``state``; ValueError naming ``source``
    and sample keys when none fits."""
    if is_torchvision_detector(state):
        return 'torchvision'
    if is_mmdet_detector(state):
        return 'mmdet'
    layout = detect_backbone_format(state)
    if layout in _BACKBONE_LAYOUTS:
        return _BACKBONE_LAYOUTS[layout]
    if layout != 'unknown':
        raise ValueError(
            f'{source} holds a backbone in the {layout} layout, which only the backbone can '
            "convert: use it as the backbone's init_cfg=dict(type='Pretrained', "
            f'checkpoint={source!r})'
        )
    raise ValueError(
        f'Cannot tell which library wrote {source}: its keys {example_keys(state)} match neither '
        "mmdetection's / instseg's ('backbone.', 'neck.', 'rpn_head.', 'roi_head.') nor "
        "torchvision's ('backbone.body.', 'rpn.head.', 'roi_heads.') detectors, nor a known "
        f'backbone release. Name the format if you know it (one of {", ".join(FORMATS)}).'
    )
