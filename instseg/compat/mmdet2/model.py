"""2.x ``model`` -> native ``model``: pretrained weights, checkpointing, train/test cfg, RPN."""

from __future__ import annotations

from typing import Any

from .report import Report

# Swin-Transformer-Object-Detection's SwinTransformer argument names -> mmdetection's
_SWIN_RENAMES = {
    'embed_dim': 'embed_dims',
    'ape': 'use_abs_pos_embed',
    'use_checkpoint': 'with_cp',
    'in_chans': 'in_channels',
}


def translate_model(
    model: dict, top_train_cfg: Any, top_test_cfg: Any, preprocessor: dict, report: Report
) -> dict:
    """Translate ``model``; ``top_*_cfg`` are 2.x-era top-level ``train_cfg``/``test_cfg``
    holding rpn/rcnn settings (None when they are absent or native loops)."""
    model = dict(model)
    backbone = dict(model.get('backbone') or {})
    pretrained = model.pop('pretrained', None)
    if pretrained is not None:
        if backbone.get('pretrained') is not None or backbone.get('init_cfg') is not None:
            raise report.error(
                'model.pretrained and model.backbone.pretrained/init_cfg are both set; keep one'
            )
        backbone['pretrained'] = pretrained
    if backbone:
        model['backbone'] = _backbone(backbone, report)
    for key, top in (('train_cfg', top_train_cfg), ('test_cfg', top_test_cfg)):
        if top is None:
            continue
        if model.get(key) is not None:
            raise report.error(f'{key} is set both at the top level and inside model; keep one')
        model[key] = top
        report.note(f'top-level {key} (rpn/rcnn settings) -> model.{key}')
    for key, section in (('train_cfg', 'rpn_proposal'), ('test_cfg', 'rpn')):
        cfg = model.get(key)
        if isinstance(cfg, dict) and isinstance(cfg.get(section), dict):
            cfg = model[key] = dict(cfg)
            cfg[section] = _rpn_nms(dict(cfg[section]), f'model.{key}.{section}', report)
    if 'data_preprocessor' in model:
        existing = dict(model['data_preprocessor'])
        existing.update(preprocessor)
        preprocessor = existing
    if 'type' not in model:
        raise report.error('model: needs a type (e.g. MaskRCNN)')
    return {'type': model.pop('type'), 'data_preprocessor': preprocessor, **model}


def _renamed(options: dict, renames: dict[str, str]) -> dict:
    """``options`` with keys renamed in place (the order stays as the config wrote it)."""
    return {renames.get(k, k): v for k, v in options.items()}


def _backbone(backbone: dict, report: Report) -> dict:
    pretrained = backbone.pop('pretrained', None)
    swin_names = [k for k in _SWIN_RENAMES if k in backbone]
    if backbone.get('type') == 'SwinTransformer' and swin_names:
        backbone = _renamed(backbone, _SWIN_RENAMES)
        renamed = ', '.join(f'{k} -> {_SWIN_RENAMES[k]}' for k in swin_names)
        report.note(f'model.backbone (Swin-Transformer-Object-Detection names): {renamed}')
        if pretrained is not None:
            # that repository's backbones load the original (Microsoft) checkpoint layout
            backbone.setdefault('convert_weights', True)
    elif 'use_checkpoint' in backbone:
        backbone = _renamed(backbone, {'use_checkpoint': 'with_cp'})
        report.note('model.backbone.use_checkpoint -> with_cp')
    if pretrained is not None:
        if backbone.get('init_cfg') is not None:
            raise report.error('model.backbone: pretrained and init_cfg are both set; keep one')
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
        report.note(f'pretrained={pretrained!r} -> model.backbone.init_cfg')
    return backbone


def _rpn_nms(cfg: dict, where: str, report: Report) -> dict:
    """mmdetection < 2.12 RPN keys: nms_thr -> nms=dict(iou_threshold), max_num -> max_per_img."""
    if cfg.pop('nms_across_levels', False):
        raise report.error(f'{where}.nms_across_levels=True: NMS is always done per level')
    if 'nms_thr' in cfg:
        threshold = cfg.pop('nms_thr')
        cfg.setdefault('nms', dict(type='nms', iou_threshold=threshold))
        report.note(f'{where}.nms_thr -> nms=dict(iou_threshold={threshold})')
    if 'max_num' in cfg:
        cfg.setdefault('max_per_img', cfg.pop('max_num'))
        cfg.pop('max_num', None)
        report.note(f'{where}.max_num -> max_per_img')
    if cfg.pop('nms_post', None) is not None:
        report.note(f'{where}.nms_post: dropped (max_per_img caps the proposals)')
    return cfg


def data_preprocessor(report: Report, img_norm_cfg: dict | None) -> dict:
    """DetDataPreprocessor from the Normalize and Pad steps the pipelines had.

    Training pipelines decide; the test pipelines must agree on normalisation (one model
    normalises both), and ``img_norm_cfg`` stands in when no pipeline normalised.
    """
    train = [n for name, n in report.norm.items() if '.train' in name]
    norm = train[0] if train else next(iter(report.norm.values()), None)
    for name, other in report.norm.items():
        if norm is not None and other != norm:
            raise report.error(
                f'{name}: Normalize {other} differs from {norm}; instseg normalises every '
                'pipeline the same way in model.data_preprocessor'
            )
    if norm is None and img_norm_cfg is not None:
        norm = dict(mean=list(img_norm_cfg['mean']), std=list(img_norm_cfg['std']),
                    to_rgb=img_norm_cfg.get('to_rgb', True))  # fmt: skip
        report.note('img_norm_cfg (no Normalize step) -> model.data_preprocessor')
    out: dict[str, Any] = dict(type='DetDataPreprocessor')
    if norm is not None:
        out.update(mean=norm['mean'], std=norm['std'], bgr_to_rgb=bool(norm['to_rgb']))
    train_pads = [p for name, p in report.pad.items() if '.train' in name]
    pad = train_pads[0] if train_pads else next(iter(report.pad.values()), None)
    # without a Pad step, 2.x batched images padded only to the largest one
    out['pad_size_divisor'] = pad['size_divisor'] if pad else 1
    if pad and pad['value']:
        out['pad_value'] = pad['value']
    for name, other in report.pad.items():
        if other != pad:
            report.warn(f'{name}: Pad {other} differs from {pad}; the data preprocessor '
                        'pads every batch the same way')  # fmt: skip
    report.note(f'Normalize/Pad steps -> model.data_preprocessor {out}')
    return out
