"""Checkpoint converters: other libraries' key names -> instseg's (mmdetection 3.x's).

``convert_checkpoint(checkpoint)`` finds the state dict in a loaded checkpoint, tells its format
from the key names and renames the keys. Formats:

- ``'mmdet'``: mmdetection 2.x / 3.x detectors and instseg's own checkpoints (Mask R-CNN,
  Cascade Mask R-CNN; ResNet, or Swin under official or mmdetection names).
- ``'torchvision'``: torchvision ``maskrcnn_resnet50_fpn`` and ``maskrcnn_resnet50_fpn_v2``.
- ``'swin'`` / ``'convnext'``: the official Swin Transformer / ConvNeXt releases (a backbone only).
- ``'backbone'``: a backbone already under instseg's names (ResNet from torchvision or
  mmdetection, Swin or ConvNeXt from mmdetection / mmpretrain): kept as it is.

Backbone-only formats give keys without the ``backbone.`` prefix, ready for a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=...)``. (timm and Hugging Face files need the
backbone itself to be converted: give them to that ``init_cfg``, which converts them.)

Conventions that differ between the libraries are pinned in :mod:`.conventions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from instseg.checkpoint.convert.mmdet import convert_mmdet, is_mmdet_detector
from instseg.checkpoint.convert.torchvision import (
    convert_torchvision_maskrcnn,
    is_torchvision_detector,
    torchvision_num_classes,
)

# Formats whose keys are a backbone's alone (no ``backbone.`` prefix).
BACKBONE_FORMATS = ('swin', 'convnext', 'backbone')
FORMATS = ('mmdet', 'torchvision', *BACKBONE_FORMATS)
# detect_backbone_format's layouts -> formats here.
_BACKBONE_LAYOUTS = {
    'swin_official': 'swin',
    'convnext_official': 'convnext',
    'swin_mmdet': 'backbone',
    'convnext_mmpretrain': 'backbone',
    'resnet': 'backbone',
}
_SAMPLE_KEYS = 8


def extract_state_dict(checkpoint: Mapping[str, Any], source: str = 'checkpoint') -> dict:
    """The state dict inside a loaded checkpoint, without a DDP ``module.`` prefix.

    Looks under ``state_dict`` (mmdetection, mmengine, instseg), then ``model`` (the official
    Swin / ConvNeXt releases), else takes the mapping itself when it holds tensors (torchvision).
    ``meta`` and optimizer states are ignored. Raises ValueError naming ``source`` and its
    top-level keys when no state dict is found.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    state = None
    for name in ('state_dict', 'model'):
        if isinstance(checkpoint.get(name), Mapping):
            state = checkpoint[name]
            break
    if state is None and any(isinstance(v, Tensor) for v in checkpoint.values()):
        state = checkpoint
    if state is None:
        raise ValueError(
            f'No state dict in {source}: expected a "state_dict" or "model" entry or a mapping of '
            f'tensors; its top-level keys are {_sample(checkpoint)}'
        )
    if state and all(key.startswith('module.') for key in state):
        state = {key[len('module.') :]: value for key, value in state.items()}
    return {key: value for key, value in state.items() if isinstance(value, Tensor)}


def detect_format(state: Mapping[str, Tensor], source: str = 'checkpoint') -> str:
    """One of :data:`FORMATS` from the key names of ``state``; ValueError naming ``source``
    and sample keys when none fits."""
    if is_torchvision_detector(state):
        return 'torchvision'
    if is_mmdet_detector(state):
        return 'mmdet'
    from instseg.checkpoint.convert.backbones import detect_backbone_format

    layout = detect_backbone_format(dict(state))
    if layout in _BACKBONE_LAYOUTS:
        return _BACKBONE_LAYOUTS[layout]
    if layout != 'unknown':
        raise ValueError(
            f'{source} holds a backbone in the {layout} layout, which only the backbone can '
            "convert: use it as the backbone's init_cfg=dict(type='Pretrained', "
            f'checkpoint={source!r})'
        )
    raise ValueError(
        f'Cannot tell which library wrote {source}: its keys {_sample(state)} match neither '
        "mmdetection's / instseg's ('backbone.', 'neck.', 'rpn_head.', 'roi_head.') nor "
        "torchvision's ('backbone.body.', 'rpn.head.', 'roi_heads.') detectors, nor a known "
        f'backbone release. Name the format if you know it (one of {", ".join(FORMATS)}).'
    )


def convert_state_dict(
    state: Mapping[str, Tensor],
    fmt: str = 'auto',
    source: str = 'checkpoint',
    num_classes: int | None = None,
) -> tuple[dict[str, Tensor], str]:
    """Rename ``state``'s keys to instseg's. Returns ``(new state, format used)``.

    ``num_classes`` (of the model that will load the result) lets a 91-output torchvision COCO
    checkpoint keep exactly the 80 COCO classes for an 80-class model; see
    :func:`convert_torchvision_maskrcnn`.
    """
    if fmt == 'auto':
        fmt = detect_format(state, source)
    if fmt not in _CONVERTERS:
        raise ValueError(
            f'Unknown checkpoint format {fmt!r} for {source}; use auto or one of {FORMATS}'
        )
    return _CONVERTERS[fmt](state, num_classes), fmt


def convert_checkpoint(
    checkpoint: Mapping[str, Any],
    fmt: str = 'auto',
    source: str = 'checkpoint',
    num_classes: int | None = None,
) -> tuple[dict[str, Tensor], str]:
    """:func:`extract_state_dict` then :func:`convert_state_dict`."""
    return convert_state_dict(extract_state_dict(checkpoint, source), fmt, source, num_classes)


def _convert_swin(state: Mapping[str, Tensor], num_classes: int | None) -> dict[str, Tensor]:
    from instseg.checkpoint.convert.backbones import convert_swin_official

    return convert_swin_official(dict(state))


def _convert_convnext(state: Mapping[str, Tensor], num_classes: int | None) -> dict[str, Tensor]:
    from instseg.checkpoint.convert.backbones import convert_convnext_official

    return convert_convnext_official(dict(state))


_CONVERTERS: dict[str, Callable[[Mapping[str, Tensor], int | None], dict[str, Tensor]]] = {
    'mmdet': lambda state, num_classes: convert_mmdet(state),
    'torchvision': convert_torchvision_maskrcnn,
    'swin': _convert_swin,
    'convnext': _convert_convnext,
    'backbone': lambda state, num_classes: dict(state),
}


def _sample(mapping: Mapping) -> str:
    keys = list(mapping)
    more = f' ... ({len(keys)} in all)' if len(keys) > _SAMPLE_KEYS else ''
    return ', '.join(repr(k) for k in keys[:_SAMPLE_KEYS]) + more


__all__ = [
    'BACKBONE_FORMATS',
    'FORMATS',
    'convert_checkpoint',
    'convert_mmdet',
    'convert_state_dict',
    'convert_torchvision_maskrcnn',
    'detect_format',
    'extract_state_dict',
    'torchvision_num_classes',
]
