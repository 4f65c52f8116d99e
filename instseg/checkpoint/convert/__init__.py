"""Checkpoint converters: other libraries' key names -> instseg's (mmdetection 3.x's).

``convert_checkpoint(checkpoint)`` finds the state dict in a loaded checkpoint, tells its format
from the key names (:mod:`instseg.checkpoint.detect`) and renames the keys. Backbone-only formats
give keys without the ``backbone.`` prefix, ready for a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=...)``. (timm and Hugging Face files need the
backbone itself to be converted: give them to that ``init_cfg``, which converts them.)

Conventions that differ between the libraries are pinned in :mod:`.conventions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from instseg.checkpoint.convert.backbones import convert_convnext_official, convert_swin_official
from instseg.checkpoint.convert.mmdet import convert_mmdet
from instseg.checkpoint.convert.torchvision import (
    convert_torchvision_maskrcnn,
    torchvision_num_classes,
)
from instseg.checkpoint.detect import FORMATS, detect_format
from instseg.checkpoint.read import extract_state_dict

_CONVERTERS: dict[str, Callable[[Mapping[str, Tensor], int | None], dict[str, Tensor]]] = {
    'mmdet': lambda state, num_classes: convert_mmdet(state),
    'torchvision': convert_torchvision_maskrcnn,
    'swin': lambda state, num_classes: convert_swin_official(state),
    'convnext': lambda state, num_classes: convert_convnext_official(state),
    'backbone': lambda state, num_classes: dict(state),
}


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
    """:func:`~instseg.checkpoint.read.extract_state_dict` then :func:`convert_state_dict`."""
    return convert_state_dict(extract_state_dict(checkpoint, source), fmt, source, num_classes)


__all__ = [
    'convert_checkpoint',
    'convert_mmdet',
    'convert_state_dict',
    'convert_torchvision_maskrcnn',
    'torchvision_num_classes',
]
