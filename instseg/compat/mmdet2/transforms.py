"""Argument translation for the 2.x transforms that keep a native counterpart.

Each function takes the step's arguments (without ``type``), pops what it translates and reports
the rest, and returns the native step, or None when the step has nothing left to do.
"""

from __future__ import annotations

from typing import Any

from .report import Report, pop_all

_DISK = (None, {'backend': 'disk'})


def scale_list(img_scale: Any) -> list[tuple]:
    """A 2.x ``img_scale`` (one (w, h) tuple or a list of them) as a list of tuples."""
    if (
        isinstance(img_scale, (list, tuple))
        and img_scale
        and isinstance(img_scale[0], (list, tuple))
    ):
        return [tuple(s) for s in img_scale]
    return [tuple(img_scale)]


def _long_short(scale: tuple) -> tuple:
    return (max(scale), min(scale))


def backend_args(args: dict, where: str, report: Report) -> dict | None:
    """2.x ``file_client_args`` -> mmengine ``backend_args`` (None for the local disk)."""
    client = args.pop('file_client_args', None)
    if client in _DISK:
        return None
    report.note(f'{where}: file_client_args -> backend_args')
    return dict(client)


def load_image(args: dict, where: str, report: Report) -> dict:
    """LoadImageFromFile: same arguments but ``file_client_args`` -> ``backend_args``."""
    out = dict(type='LoadImageFromFile')
    out.update(pop_all(args, ('to_float32', 'color_type', 'channel_order', 'imdecode_backend')))
    out['backend_args'] = backend_args(args, where, report)
    report.leftover(args, where)
    return out


def load_annotations(args: dict, where: str, report: Report) -> dict:
    """LoadAnnotations: same flags; ``denorm_bbox`` has no counterpart (COCO boxes are pixels)."""
    out = dict(type='LoadAnnotations')
    out.update(pop_all(args, ('with_bbox', 'with_label', 'with_mask', 'with_seg', 'poly2mask')))
    if args.pop('denorm_bbox', False):
        raise report.error(f'{where}.denorm_bbox=True: normalised boxes are not supported')
    client = backend_args(args, where, report)
    if client is not None:
        out['backend_args'] = client
    report.leftover(args, where)
    return out


def resize_options(args: dict, where: str, report: Report) -> dict:
    """The Resize options besides the scale; reports any other argument left in ``args``."""
    # 2.x Resize kept the aspect ratio unless told otherwise; the native default is the opposite.
    options: dict[str, Any] = dict(keep_ratio=args.pop('keep_ratio', True))
    if 'bbox_clip_border' in args:
        options['clip_object_border'] = args.pop('bbox_clip_border')
    options.update(pop_all(args, ('backend', 'interpolation')))
    report.leftover(args, where)
    return options


def resize(args: dict, where: str, report: Report) -> dict:
    """Resize(img_scale, multiscale_mode, ratio_range, keep_ratio, override) -> a native resize.

    One scale -> Resize; with ``ratio_range`` -> RandomResize(scale, ratio_range); several scales
    in 'value' mode -> RandomChoiceResize(scales); two in 'range' mode -> RandomResize(scale=[lo,
    hi]). With ``keep_ratio`` a scale only bounds the long and short edges, so scales are written
    (long, short) as native configs do; 2.x's 'range' mode always sampled them so.
    """
    img_scale = args.pop('img_scale', None)
    mode = args.pop('multiscale_mode', 'range')
    ratio_range = args.pop('ratio_range', None)
    if args.pop('override', False):
        report.note(f'{where}: override=True dropped (native resizes always recompute the scale)')
    common = resize_options(args, where, report)
    if img_scale is None:
        raise report.error(
            f'{where}: a Resize without img_scale outside MultiScaleFlipAug has no size to use'
        )
    scales = scale_list(img_scale)
    keep = common['keep_ratio']
    if ratio_range is not None:
        if len(scales) != 1:
            raise report.error(f'{where}: ratio_range needs exactly one img_scale, got {scales}')
        scale = _long_short(scales[0]) if keep else scales[0]
        return dict(type='RandomResize', scale=scale, ratio_range=tuple(ratio_range), **common)
    if len(scales) == 1:
        scale = _long_short(scales[0]) if keep else scales[0]
        return dict(type='Resize', scale=scale, **common)
    if mode == 'range':
        if len(scales) != 2:
            raise report.error(f"{where}: multiscale_mode='range' needs 2 scales, got {scales}")
        lows_highs = [_long_short(s) for s in scales]
        return dict(type='RandomResize', scale=lows_highs, **common)
    if mode != 'value':
        raise report.error(f"{where}: multiscale_mode must be 'range' or 'value', got {mode!r}")
    scales = [_long_short(s) for s in scales] if keep else scales
    return dict(type='RandomChoiceResize', scales=scales, **common)


def random_flip(args: dict, where: str, report: Report) -> dict | None:
    """RandomFlip(flip_ratio, direction) -> RandomFlip(prob, direction)."""
    prob = args.pop('flip_ratio', None)
    direction = args.pop('direction', None)
    report.leftover(args, where)
    if prob is None:
        report.warn(f'{where}: RandomFlip without flip_ratio never flips in 2.x; dropped')
        return None
    out = dict(type='RandomFlip', prob=prob)
    if direction is not None:
        out['direction'] = direction
    return out


def random_crop(args: dict, where: str, report: Report) -> dict:
    """RandomCrop: 2.x read an 'absolute' or 'relative' crop_size as (h, w), native as (w, h)."""
    out = dict(type='RandomCrop', **pop_all(args, ('crop_type',)))
    crop_size = tuple(args.pop('crop_size'))
    if out.get('crop_type', 'absolute') in ('absolute', 'relative'):
        crop_size = crop_size[::-1]
        report.note(f'{where}: crop_size {crop_size[::-1]} (h, w) -> {crop_size} (w, h)')
    out['crop_size'] = crop_size
    out.update(pop_all(args, ('allow_negative_crop', 'recompute_bbox')))
    if 'bbox_clip_border' in args:
        out['bbox_clip_border'] = args.pop('bbox_clip_border')
    report.leftover(args, where)
    return out


def pad_value(pad_val: Any) -> float:
    """The image part of a 2.x ``pad_val`` (a number or dict(img=..., masks=..., seg=...))."""
    return pad_val.get('img', 0) if isinstance(pad_val, dict) else pad_val


def fixed_pad(args: dict, where: str, report: Report) -> dict:
    """Pad(size=...) or Pad(pad_to_square=True): stays a transform, before normalisation."""
    out = dict(type='Pad')
    out.update(pop_all(args, ('size', 'size_divisor', 'pad_to_square')))
    if 'pad_val' in args:
        pad_val = args.pop('pad_val')
        seg = pad_val.get('seg', 255) if isinstance(pad_val, dict) else 255
        out['pad_val'] = dict(img=pad_value(pad_val), seg=seg)
    report.leftover(args, where)
    report.warn(
        f'{where}: Pad to a fixed size stays a transform and now pads before normalisation '
        '(2.x padded normalised images), so padded pixels hold pad_val, not (pad_val-mean)/std'
    )
    return out
