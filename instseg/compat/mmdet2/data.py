"""2.x ``data=dict(samples_per_gpu, workers_per_gpu, train, val, test)`` -> dataloaders."""

from __future__ import annotations

import os.path as osp
from typing import Any

from mmengine.fileio import list_from_file

from instseg.registry import DATASETS

from .pipeline import translate_pipeline
from .report import Report, pop_all
from .transforms import backend_args

_SPLITS = ('train', 'val', 'test')
# mmdetection 2.x CocoDataset dropped training images under 32 px (its _filter_imgs default).
_MIN_SIZE = 32


def translate_data(data: dict, runner_by_epoch: bool, report: Report, cfg: dict) -> dict:
    """``data`` -> ``{train,val,test}_dataloader`` (only the splits it defines).

    ``cfg`` is the whole 2.x config, read for a top-level ``data_root`` to keep paths short.
    """
    data = dict(data)
    batch = data.pop('samples_per_gpu', None)
    workers = data.pop('workers_per_gpu', None)
    persistent = data.pop('persistent_workers', None)
    per_split = {s: dict(data.pop(f'{s}_dataloader', None) or {}) for s in _SPLITS}
    datasets = {s: data.pop(s) for s in _SPLITS if s in data}
    if 'sampler' in data:
        report.warn(
            'data.sampler: 2.x sampler choices are ignored; instseg samples by aspect ratio'
        )
        data.pop('sampler')
    report.leftover(data, 'data')

    out: dict[str, Any] = {}
    for split, dataset in datasets.items():
        dataset = _split_options(dataset, per_split[split])
        loader = per_split[split]
        size = loader.pop('samples_per_gpu', batch if split == 'train' else 1)
        num_workers = loader.pop('workers_per_gpu', workers if workers is not None else 2)
        keep_alive = loader.pop('persistent_workers', persistent)
        loader.pop('shuffle', None)
        report.leftover(loader, f'data.{split}_dataloader')
        if size is None:
            raise report.error('data.samples_per_gpu is missing: the training batch size')
        native = dict(
            batch_size=size,
            num_workers=num_workers,
            # a pure speed setting; workers that live across epochs save their start-up time
            persistent_workers=num_workers > 0 and keep_alive is not False,
        )
        if split == 'train':
            sampler = 'DefaultSampler' if runner_by_epoch else 'InfiniteSampler'
            native['sampler'] = dict(type=sampler, shuffle=True)
            # 2.x's GroupSampler batched images of like aspect ratio together, as this does
            native['batch_sampler'] = dict(type='AspectRatioBatchSampler')
        else:
            native['drop_last'] = False
            native['sampler'] = dict(type='DefaultSampler', shuffle=False)
        native['dataset'] = translate_dataset(dataset, f'data.{split}', split, report, cfg)
        out[f'{split}_dataloader'] = native
        report.note(f'data.{split} -> {split}_dataloader (batch_size={size})')
    return out


def _split_options(dataset: Any, loader: dict) -> Any:
    # 2.x read a split's batch size from the dataset dict itself (data.val.samples_per_gpu).
    if isinstance(dataset, dict):
        dataset = dict(dataset)
        loader.update(pop_all(dataset, ('samples_per_gpu', 'workers_per_gpu')))
    return dataset


def translate_dataset(dataset: Any, where: str, split: str, report: Report, cfg: dict) -> dict:
    """One 2.x dataset dict (or list of them, or wrapper) -> its native dataset dict."""
    if isinstance(dataset, (list, tuple)):
        parts = [
            translate_dataset(d, f'{where}[{i}]', split, report, cfg) for i, d in enumerate(dataset)
        ]
        return dict(type='ConcatDataset', datasets=parts)
    args = dict(dataset)
    kind = args.pop('type', None)
    if kind == 'RepeatDataset':
        inner = translate_dataset(args.pop('dataset'), f'{where}.dataset', split, report, cfg)
        times = args.pop('times')
        report.leftover(args, where)
        return dict(type='RepeatDataset', times=times, dataset=inner)
    if kind == 'ClassBalancedDataset':
        inner = translate_dataset(args.pop('dataset'), f'{where}.dataset', split, report, cfg)
        threshold = args.pop('oversample_thr')
        args.pop('filter_empty_gt', None)  # the inner dataset's filter_cfg decides
        report.leftover(args, where)
        return dict(type='ClassBalancedDataset', oversample_thr=threshold, dataset=inner)
    if kind == 'ConcatDataset':
        parts = [
            translate_dataset(d, f'{where}.datasets[{i}]', split, report, cfg)
            for i, d in enumerate(args.pop('datasets'))
        ]
        if 'separate_eval' in args and split != 'train':
            report.warn(f'{where}.separate_eval: ignored; the parts are evaluated together')
        args.pop('separate_eval', None)
        report.leftover(args, where)
        return dict(type='ConcatDataset', datasets=parts)
    if isinstance(args.get('ann_file'), (list, tuple)):
        return _implicit_concat(args, kind, where, split, report, cfg)
    return _base_dataset(args, kind, where, split, report, cfg)


def _implicit_concat(args: dict, kind: Any, where: str, split: str, report: Report, cfg: dict):
    # 2.x built one dataset per ann_file (with matching img_prefix when that is a list too).
    files = args.pop('ann_file')
    parts = []
    for i, ann_file in enumerate(files):
        part = dict(args, type=kind, ann_file=ann_file)
        for key in ('img_prefix', 'seg_prefix', 'proposal_file'):
            if isinstance(args.get(key), (list, tuple)):
                part[key] = args[key][i]
        parts.append(_base_dataset(part, part.pop('type'), f'{where}[{i}]', split, report, cfg))
    report.note(f'{where}: {len(files)} ann_files -> ConcatDataset')
    return dict(type='ConcatDataset', datasets=parts)


def _base_dataset(args: dict, kind: Any, where: str, split: str, report: Report, cfg: dict):
    if kind is None or 'ann_file' not in args:
        raise report.error(f'{where}: a dataset needs a type and an ann_file')
    if DATASETS.get(kind) is None:
        report.warn(f'{where}: dataset type {kind!r} is not registered in instseg (kept)')
    ann_file = args.pop('ann_file')
    img_prefix = args.pop('img_prefix', '')
    seg_prefix = args.pop('seg_prefix', None)
    data_root = args.pop('data_root', None)
    if args.pop('proposal_file', None) is not None:
        raise report.error(f'{where}.proposal_file: precomputed proposals are not supported')
    out: dict[str, Any] = dict(type=kind)
    if data_root is None:
        data_root, ann_file, img_prefix, seg_prefix = _factor_root(
            cfg.get('data_root'), ann_file, img_prefix, seg_prefix
        )
    if data_root is not None:
        out['data_root'] = data_root
    out['ann_file'] = ann_file
    out['data_prefix'] = dict(img=img_prefix)
    if seg_prefix is not None:
        out['data_prefix']['seg'] = seg_prefix
    metainfo = _metainfo(args, where, report)
    if metainfo:
        out['metainfo'] = metainfo
    test_mode = args.pop('test_mode', split != 'train')
    filter_empty = args.pop('filter_empty_gt', True)
    if not test_mode:  # 2.x filtered only training sets
        out['filter_cfg'] = dict(filter_empty_gt=filter_empty, min_size=_MIN_SIZE)
    else:
        out['test_mode'] = True
    steps = args.pop('pipeline', [])
    out['pipeline'] = translate_pipeline(steps, f'{where}.pipeline', report, test=split != 'train')
    out['backend_args'] = backend_args(args, where, report)
    if 'seg_suffix' in args:
        report.warn(f'{where}.seg_suffix: ignored (semantic maps are not loaded)')
        args.pop('seg_suffix')
    report.leftover(args, where)
    return out


def _factor_root(root: Any, ann_file: str, img_prefix: str, seg_prefix: str | None) -> tuple:
    """Write ``root + 'x'`` paths as data_root=root, 'x' when all of them start with root."""
    paths = [p for p in (ann_file, img_prefix, seg_prefix) if p is not None]
    if (
        not isinstance(root, str)
        or not root
        or not all(isinstance(p, str) and p.startswith(root) for p in paths)
    ):
        return None, ann_file, img_prefix, seg_prefix

    def strip(path: str | None) -> str | None:
        return None if path is None else path[len(root) :].lstrip('/')

    return root, strip(ann_file), strip(img_prefix), strip(seg_prefix)


def _metainfo(args: dict, where: str, report: Report) -> dict:
    metainfo = dict(args.pop('metainfo', None) or {})
    classes = args.pop('classes', None)
    if isinstance(classes, str):  # 2.x read a file with one class name per line
        if not osp.isfile(classes):
            raise report.error(f'{where}.classes: class-name file {classes!r} does not exist')
        classes = list_from_file(classes)
        report.note(f'{where}.classes: read {len(classes)} names from the file')
    if classes is not None:
        metainfo['classes'] = tuple(classes)
    if 'palette' in args:
        metainfo['palette'] = args.pop('palette')
    return metainfo


def full_ann_file(dataset: dict) -> str | None:
    """The annotation file a native dataset reads (data_root joined), for the COCO metric."""
    while dataset.get('type') in ('RepeatDataset', 'ClassBalancedDataset', 'ConcatDataset'):
        dataset = dataset['datasets'][0] if 'datasets' in dataset else dataset['dataset']
    ann_file = dataset.get('ann_file')
    root = dataset.get('data_root')
    if ann_file is None or not root or osp.isabs(ann_file):
        return ann_file
    return root + ann_file if root.endswith('/') else osp.join(root, ann_file)
