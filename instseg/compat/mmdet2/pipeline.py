"""2.x data pipelines -> native ones.

Normalisation and padding leave the pipeline for the model's data preprocessor (recorded on the
report per pipeline); formatting steps collapse into one PackDetInputs; AutoAugment policies
become a RandomChoice; MultiScaleFlipAug unrolls into plain test steps at its first scale, and
into a TestTimeAug pipeline (recorded on the report) when it has several scales or flips.
"""

from __future__ import annotations

from typing import Any

from instseg.registry import TRANSFORMS

from . import transforms as tf
from .report import Report

# Steps whose work PackDetInputs or the data preprocessor now does.
_FORMATTING = {'DefaultFormatBundle', 'ImageToTensor', 'ToTensor', 'Transpose', 'ToDataContainer'}
# Types whose 2.x arguments mmdetection 3.x kept unchanged.
_UNCHANGED = {
    'PhotoMetricDistortion',
    'Expand',
    'MinIoURandomCrop',
    'CutOut',
    'FilterAnnotations',
    'SegRescale',
    'YOLOXHSVRandomAug',
}
# 2.x Collect's default meta keys; the native defaults are PackDetInputs' own.
_COLLECT_META = {
    'filename',
    'ori_filename',
    'ori_shape',
    'img_shape',
    'pad_shape',
    'scale_factor',
    'flip',
    'flip_direction',
    'img_norm_cfg',
}
# What a native test pipeline packs (CocoMetric needs img_id; no flips without TTA).
TEST_META = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
_META_RENAMES = {'filename': 'img_path'}
# ori_filename duplicates img_path; the data preprocessor sets pad_shape and owns normalisation.
_META_DROPPED = {'ori_filename', 'pad_shape', 'img_norm_cfg'}

MARKER_TYPES = _FORMATTING | {'Collect', 'Normalize', 'MultiScaleFlipAug'}


def is_2x_step(step: Any) -> bool:
    """A pipeline step written in 2.x's dialect (types or arguments 3.x no longer has)."""
    if not isinstance(step, dict):
        return False
    kind = step.get('type')
    if kind in MARKER_TYPES:
        return True
    if kind == 'Resize':
        return 'img_scale' in step or 'multiscale_mode' in step or 'ratio_range' in step
    if kind == 'RandomFlip':
        return 'flip_ratio' in step
    if kind == 'AutoAugment':
        return 'policies' in step and any(
            is_2x_step(s) for policy in step['policies'] for s in policy
        )
    return False


def translate_pipeline(steps: list, name: str, report: Report, test: bool = False) -> list[dict]:
    """Translate the 2.x pipeline ``steps`` found at config key ``name``.

    ``test``: a test pipeline, whose PackDetInputs packs the native test meta keys.
    """
    if not isinstance(steps, (list, tuple)):
        raise report.error(
            f'{name}: a pipeline must be a list of steps, got {type(steps).__name__}'
        )
    out: list[dict] = []
    for index, step in enumerate(steps):
        where = f'{name}[{index}]'
        if isinstance(step, dict) and step.get('type') == 'MultiScaleFlipAug':
            args = {k: v for k, v in step.items() if k != 'type'}
            plain, branches = _multi_scale_flip_aug(
                args, f'{where} (MultiScaleFlipAug)', name, report
            )
            if branches:
                report.tta[name] = out + [dict(type='TestTimeAug', transforms=branches)]
            out.extend(plain)
        else:
            out.extend(_step(step, where, name, report, test))
    return out


def _step(step: Any, where: str, name: str, report: Report, test: bool) -> list[dict]:
    if not isinstance(step, dict) or 'type' not in step:
        raise report.error(f'{where}: a pipeline step must be a dict with a type, got {step!r}')
    args = dict(step)
    kind = args.pop('type')
    where = f'{where} ({kind})'
    if kind in _FORMATTING:
        return []
    if kind == 'Collect':
        return [_pack(args, where, report, test)]
    if kind == 'Normalize':
        report.norm[name] = dict(
            mean=list(args.pop('mean')), std=list(args.pop('std')), to_rgb=args.pop('to_rgb', True)
        )
        report.leftover(args, where)
        return []
    if kind == 'Pad':
        if 'size' in args or args.get('pad_to_square'):
            return [tf.fixed_pad(args, where, report)]
        report.pad[name] = dict(
            size_divisor=args.pop('size_divisor', 1), value=tf.pad_value(args.pop('pad_val', 0))
        )
        report.leftover(args, where)
        return []
    if kind == 'AutoAugment':
        return [_auto_augment(args, where, name, report)]
    if kind == 'MultiScaleFlipAug':
        raise report.error(f'{where}: MultiScaleFlipAug belongs at the top level of a pipeline')
    handler = _HANDLERS.get(kind)
    if handler is not None:
        translated = handler(args, where, report)
        return [] if translated is None else [translated]
    registered = TRANSFORMS.get(kind) is not None
    if kind not in _UNCHANGED or not registered:
        what = 'same arguments in 3.x' if kind in _UNCHANGED else 'no 2.x translation'
        missing = '' if registered else '; not registered in instseg, so building it fails'
        report.warn(f'{where}: {kind!r} kept as written ({what}){missing}')
    return [dict(type=kind, **args)]


_HANDLERS = {
    'LoadImageFromFile': tf.load_image,
    'LoadAnnotations': tf.load_annotations,
    'Resize': tf.resize,
    'RandomFlip': tf.random_flip,
    'RandomCrop': tf.random_crop,
}


def _pack(args: dict, where: str, report: Report, test: bool) -> dict:
    """Collect(keys, meta_keys) -> PackDetInputs(meta_keys): it packs whatever was loaded."""
    args.pop('keys', None)
    meta = args.pop('meta_keys', None)
    report.leftover(args, where)
    if meta is None or set(meta) == _COLLECT_META:
        if not test:
            return dict(type='PackDetInputs')
        return dict(type='PackDetInputs', meta_keys=TEST_META)
    keys = ['img_id']
    for key in meta:
        key = _META_RENAMES.get(key, key)
        if key not in _META_DROPPED and key not in keys:
            keys.append(key)
    report.note(f'{where}: meta_keys {tuple(meta)} -> {tuple(keys)}')
    return dict(type='PackDetInputs', meta_keys=tuple(keys))


def _auto_augment(args: dict, where: str, name: str, report: Report) -> dict:
    """AutoAugment(policies) -> RandomChoice(transforms): one policy, uniformly at random."""
    policies = args.pop('policies')
    report.leftover(args, where)
    choices = []
    for p, policy in enumerate(policies):
        steps: list[dict] = []
        for s, step in enumerate(policy):
            steps.extend(_step(step, f'{where}.policies[{p}][{s}]', name, report, False))
        choices.append(steps)
    report.note(f'{where}: AutoAugment policies -> RandomChoice transforms')
    return dict(type='RandomChoice', transforms=choices)


def _multi_scale_flip_aug(args: dict, where: str, name: str, report: Report) -> tuple[list, list]:
    """MultiScaleFlipAug -> (its inner steps at the first scale unflipped, TestTimeAug branches).

    The branches are empty for one scale without flips; otherwise they are every scale x flip,
    for a ``tta_pipeline`` that ``tools/test.py --tta`` runs.
    """
    inner = args.pop('transforms')
    img_scale = args.pop('img_scale', None)
    scale_factor = args.pop('scale_factor', None)
    flip = args.pop('flip', False)
    directions = args.pop('flip_direction', 'horizontal')
    report.leftover(args, where)
    if (img_scale is None) == (scale_factor is None):
        raise report.error(f'{where}: needs exactly one of img_scale and scale_factor')
    if img_scale is not None:
        sizes = [dict(img_scale=s) for s in tf.scale_list(img_scale)]
    else:
        factors = scale_factor if isinstance(scale_factor, (list, tuple)) else [scale_factor]
        sizes = [dict(scale_factor=f) for f in factors]

    resize_args: dict | None = None
    rest: list[dict] = []
    for index, step in enumerate(inner):
        kind = step.get('type') if isinstance(step, dict) else None
        if kind == 'Resize':
            resize_args = {k: v for k, v in step.items() if k != 'type'}
        elif kind != 'RandomFlip':  # the flips come from MultiScaleFlipAug's own flip
            rest.extend(_step(step, f'{where}.transforms[{index}]', name, report, True))

    resizes = []
    if resize_args is None:
        report.warn(f'{where}: no Resize inside, so its scales were never applied; dropped')
    else:
        resizes = [_test_resize(dict(resize_args), size, where, report) for size in sizes]
    plain = [r for r in resizes[:1] if r is not None] + rest
    if len(sizes) == 1 and not flip:
        return plain, []
    flips: list[dict] = []
    if flip:
        directions = [directions] if isinstance(directions, str) else list(directions)
        flips = [dict(type='RandomFlip', prob=1.0, direction=d) for d in directions]
        flips.append(dict(type='RandomFlip', prob=0.0))
        rest = [_with_flip_keys(step) for step in rest]
    views = [r if r is not None else dict(type='Resize', scale_factor=1.0) for r in resizes]
    branches = [b for b in (views, flips) if b] + [[step] for step in rest]
    report.warn(
        f'{where}: 2.x tested at {len(sizes)} scale(s) x {len(flips) or 1} flip(s); instseg tests '
        'at the first scale unflipped, and tools/test.py --tta runs all of them (tta_pipeline)'
    )
    return plain, branches


def _with_flip_keys(step: dict) -> dict:
    if step.get('type') != 'PackDetInputs' or 'meta_keys' not in step:
        return step
    keys = tuple(step['meta_keys'])
    keys += tuple(k for k in ('flip', 'flip_direction') if k not in keys)
    return dict(step, meta_keys=keys)


def _test_resize(args: dict, size: dict, where: str, report: Report) -> dict | None:
    """The Resize for one MultiScaleFlipAug size; None for ``scale_factor=1.0`` (no resize)."""
    if 'img_scale' in size:
        return tf.resize(dict(args, **size), where, report)
    options = tf.resize_options(args, where, report)
    factor = size['scale_factor']
    if factor == 1.0:  # an identity resize: native test pipelines leave it out
        report.note(f'{where}: scale_factor=1.0 is no resize; dropped')
        return None
    return dict(type='Resize', scale_factor=factor, **options)
