"""mmdetection 2.x and 3.x detector checkpoints -> instseg keys.

instseg uses mmdetection 3.x's module names, and mmdetection 2.x (from 2.0) named Mask R-CNN and
Cascade Mask R-CNN the same way (``backbone.layer1.0.conv1``, ``neck.lateral_convs.0.conv``,
``rpn_head.rpn_conv``, ``roi_head.bbox_head[.{stage}].fc_cls``, ``roi_head.mask_head[.{stage}]``);
mmdetection 3.x ships the 2.x model-zoo files unchanged. What differs is the backbone of detectors
trained with the official Swin-Transformer-Object-Detection code (an mmdetection 2.x fork): it
keeps the official Swin names under ``backbone.`` (``backbone.patch_embed.proj``,
``backbone.layers.0.blocks.0.attn.qkv``). :func:`convert_mmdet` converts such a backbone (and an
official ConvNeXt one) with the backbone converters.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from instseg.checkpoint.convert.backbones import convert_convnext_official, convert_swin_official
from instseg.checkpoint.detect import detect_backbone_format

_BACKBONE = 'backbone.'
_CONVERTERS = {
    'swin_official': convert_swin_official,
    'convnext_official': convert_convnext_official,
}


def convert_mmdet(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An mmdetection 2.x / 3.x detector state dict -> instseg keys (a new dict).

    Only an official-Swin or official-ConvNeXt backbone is renamed (by
    :mod:`.backbones`); every other key is already instseg's.
    """
    out = dict(state)
    backbone = {k[len(_BACKBONE) :]: v for k, v in out.items() if k.startswith(_BACKBONE)}
    convert = _CONVERTERS.get(detect_backbone_format(backbone)) if backbone else None
    if convert is None:
        return out
    out = {k: v for k, v in out.items() if not k.startswith(_BACKBONE)}
    out.update({_BACKBONE + k: v for k, v in convert(backbone).items()})
    return out
