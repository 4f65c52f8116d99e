"""torchvision ``maskrcnn_resnet50_fpn`` (v1) and ``maskrcnn_resnet50_fpn_v2`` -> instseg keys.

Module by module (torchvision -> instseg):

================================================  ==============================================
``backbone.body.*``                               ``backbone.*`` (ResNet names are the same)
``backbone.fpn.inner_blocks.{i}``                 ``neck.lateral_convs.{i}`` (``.conv``/``.bn``)
``backbone.fpn.layer_blocks.{i}``                 ``neck.fpn_convs.{i}``
``rpn.head.conv``                                 ``rpn_head.rpn_conv`` (v2: ``.{j}.conv``)
``rpn.head.cls_logits`` / ``bbox_pred``           ``rpn_head.rpn_cls`` / ``rpn_reg``
``roi_heads.box_head.fc6`` / ``fc7`` (v1)         ``roi_head.bbox_head.shared_fcs.0`` / ``.1``
``roi_heads.box_head.{j}`` conv / linear (v2)     ``roi_head.bbox_head.shared_convs.{j}`` /
                                                  ``shared_fcs.{k}``
``roi_heads.box_predictor.cls_score``             ``roi_head.bbox_head.fc_cls`` (background last)
``roi_heads.box_predictor.bbox_pred``             ``roi_head.bbox_head.fc_reg`` (background dropped)
``roi_heads.mask_head.{j}``                       ``roi_head.mask_head.convs.{j}``
``roi_heads.mask_predictor.conv5_mask``           ``roi_head.mask_head.upsample``
``roi_heads.mask_predictor.mask_fcn_logits``      ``roi_head.mask_head.conv_logits`` (bg dropped)
================================================  ==============================================

Both the current key layout (``inner_blocks.0.0.weight``, ``mask_head.0.0.weight``) and the one
torchvision used before 0.13 (``inner_blocks.0.weight``, ``mask_head.mask_fcn1.weight``,
``rpn.head.conv.weight``) are read. Keys that match no rule keep their name, so loading reports
them as unexpected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from instseg.checkpoint.convert.conventions import (
    background_last,
    coco_rows,
    drop_background,
)

# Conv2dNormActivation children: 0 is the conv, 1 the norm layer (only with a norm layer).
_CONV_NORM = {'0': 'conv', '1': 'bn'}

_FPN = re.compile(r'^backbone\.fpn\.(?P<src>inner|layer)_blocks\.(?P<i>\d+)\.(?:(?P<child>[01])\.)?'
                  r'(?P<param>[^.]+)$')  # fmt: skip
_MASK_CONV = re.compile(r'^roi_heads\.mask_head\.(?P<i>\d+)\.(?P<child>[01])\.(?P<param>[^.]+)$')
_MASK_FCN_OLD = re.compile(r'^roi_heads\.mask_head\.mask_fcn(?P<n>\d+)\.(?P<param>[^.]+)$')
_RPN_CONV = re.compile(r'^rpn\.head\.conv\.(?:(?P<j>\d+)\.0\.)?(?P<param>[^.]+)$')
_BOX_HEAD = re.compile(r'^roi_heads\.box_head\.(?P<j>\d+)\.(?:(?P<child>[01])\.)?(?P<param>[^.]+)$')

_PREFIXES = (
    ('backbone.body.', 'backbone.'),
    ('rpn.head.cls_logits.', 'rpn_head.rpn_cls.'),
    ('rpn.head.bbox_pred.', 'rpn_head.rpn_reg.'),
    ('roi_heads.box_head.fc6.', 'roi_head.bbox_head.shared_fcs.0.'),
    ('roi_heads.box_head.fc7.', 'roi_head.bbox_head.shared_fcs.1.'),
    ('roi_heads.box_predictor.cls_score.', 'roi_head.bbox_head.fc_cls.'),
    ('roi_heads.box_predictor.bbox_pred.', 'roi_head.bbox_head.fc_reg.'),
    ('roi_heads.mask_predictor.conv5_mask.', 'roi_head.mask_head.upsample.'),
    ('roi_heads.mask_predictor.mask_fcn_logits.', 'roi_head.mask_head.conv_logits.'),
)

# Class-specific outputs: (instseg key prefix, rows per class, whether a background row stays).
_CLASS_ROWS = (
    ('roi_head.bbox_head.fc_cls.', 1, True),
    ('roi_head.bbox_head.fc_reg.', 4, False),
    ('roi_head.mask_head.conv_logits.', 1, False),
)


def torchvision_num_classes(state: Mapping[str, Tensor]) -> int | None:
    """Number of foreground classes of a torchvision detector state (outputs minus background)."""
    weight = state.get('roi_heads.box_predictor.cls_score.weight')
    return None if weight is None else weight.shape[0] - 1


def convert_torchvision_maskrcnn(
    state: Mapping[str, Tensor], num_classes: int | None = None
) -> dict[str, Tensor]:
    """Rename a torchvision Mask R-CNN (v1 or v2) state dict to instseg's keys.

    Args:
        state: torchvision ``model.state_dict()``.
        num_classes: classes of the model that will load the result. From a 91-output COCO
            checkpoint, 80 keeps the 80 used COCO categories in instseg's label order (see
            :data:`~instseg.checkpoint.convert.conventions.COCO_CATEGORY_IDS`); anything else,
            or None, keeps all outputs (91 outputs -> 90 classes).

    Returns:
        A new dict with instseg keys. The classifier has background last; the box regressor and
        mask predictor have no background rows.
    """
    rpn_convs = {m['j'] for key in state if (m := _RPN_CONV.match(key)) and m['j'] is not None}
    box_convs = {
        int(m['j'])
        for key, value in state.items()
        if (m := _BOX_HEAD.match(key)) and m['param'] == 'weight' and value.ndim == 4
    }
    out = {_rename(key, len(rpn_convs), len(box_convs)): value for key, value in state.items()}
    coco = num_classes == 80 and torchvision_num_classes(state) == 90
    for prefix, group, keeps_background in _CLASS_ROWS:
        for key in [k for k in out if k.startswith(prefix)]:
            out[key] = _class_rows(out[key], group, keeps_background, coco)
    return out


def _class_rows(rows: Tensor, group: int, keeps_background: bool, coco: bool) -> Tensor:
    """torchvision's per-class rows (background first) -> instseg's, optionally COCO's 80."""
    if not keeps_background:
        rows = drop_background(rows, group)
        return coco_rows(rows, group) if coco else rows
    rows = background_last(rows, group)
    if coco:
        rows = torch.cat([coco_rows(rows[:-group], group), rows[-group:]])
    return rows


def _rename(key: str, num_rpn_convs: int, num_box_convs: int) -> str:
    for src, dst in _PREFIXES:
        if key.startswith(src):
            return dst + key[len(src) :]
    if m := _FPN.match(key):
        dst = 'neck.lateral_convs' if m['src'] == 'inner' else 'neck.fpn_convs'
        return _conv_norm_key(dst, m['i'], m['child'], m['param'])
    if m := _MASK_CONV.match(key):
        return _conv_norm_key('roi_head.mask_head.convs', m['i'], m['child'], m['param'])
    if m := _MASK_FCN_OLD.match(key):
        return f'roi_head.mask_head.convs.{int(m["n"]) - 1}.conv.{m["param"]}'
    if m := _RPN_CONV.match(key):
        if num_rpn_convs <= 1:  # a single conv is a plain Conv2d in instseg's RPNHead
            return f'rpn_head.rpn_conv.{m["param"]}'
        return f'rpn_head.rpn_conv.{m["j"]}.conv.{m["param"]}'
    if m := _BOX_HEAD.match(key):
        # FastRCNNConvFCHead: conv blocks 0..n-1, Flatten at n, then (Linear, ReLU) pairs.
        j = int(m['j'])
        if j < num_box_convs:
            return _conv_norm_key('roi_head.bbox_head.shared_convs', j, m['child'], m['param'])
        fc = (j - num_box_convs - 1) // 2
        return f'roi_head.bbox_head.shared_fcs.{fc}.{m["param"]}'
    return key


def _conv_norm_key(dst: str, index: int | str, child: str | None, param: str) -> str:
    """A Conv2dNormActivation parameter (child 0 conv, 1 norm; None: a bare conv) -> ConvModule."""
    return f'{dst}.{index}.{_CONV_NORM[child] if child is not None else "conv"}.{param}'
