"""2.x ``evaluation=dict(...)`` -> CocoMetric evaluators, validation interval, best checkpoint."""

from __future__ import annotations

from typing import Any

from .data import full_ann_file
from .report import Report, pop_all

_METRICS = ('bbox', 'segm', 'proposal')
# evaluation options 2.x passed on to CocoDataset.evaluate, under their CocoMetric names
_METRIC_OPTIONS = {
    'classwise': 'classwise',
    'proposal_nums': 'proposal_nums',
    'iou_thrs': 'iou_thrs',
    'metric_items': 'metric_items',
    'jsonfile_prefix': 'outfile_prefix',
}


def translate_evaluation(evaluation: dict | None, loaders: dict, report: Report) -> dict[str, Any]:
    """Return native keys: ``val_evaluator``/``test_evaluator``, ``train_cfg`` (val_interval,
    val_begin, dynamic_intervals) and ``checkpoint`` (save_best, rule, ...) options.

    2.x validated every epoch (or ``interval``) with ``metric='bbox'`` unless told otherwise.
    """
    options = dict(evaluation or {})
    metric = options.pop('metric', 'bbox')
    metrics = [metric] if isinstance(metric, str) else list(metric)
    for i, name in enumerate(metrics):
        if name == 'proposal_fast':
            metrics[i] = 'proposal'
            report.note("evaluation.metric: 'proposal_fast' -> 'proposal' (same recall figures)")
        elif name not in _METRICS:
            raise report.error(
                f'evaluation.metric: {name!r} is not a COCO metric; instseg evaluates {_METRICS}'
            )
    metric_args: dict[str, Any] = dict(
        metric=metrics if isinstance(metric, (list, tuple)) else metrics[0]
    )
    for old, new in _METRIC_OPTIONS.items():
        if old in options:
            metric_args[new] = options.pop(old)
    if options.pop('gpu_collect', False):
        metric_args['collect_device'] = 'gpu'
    for name in ('tmpdir', 'efficient_test', 'logger'):
        if options.pop(name, None) is not None:
            report.note(f'evaluation.{name}: not needed by instseg; dropped')

    if options.pop('by_epoch', report.by_epoch) != report.by_epoch:
        raise report.error(
            'evaluation.by_epoch differs from the runner: instseg validates in the training '
            "loop's own unit (epochs for EpochBasedRunner, iterations for IterBasedRunner)"
        )
    train_cfg: dict[str, Any] = dict(val_interval=options.pop('interval', 1))
    if 'start' in options:
        train_cfg['val_begin'] = options.pop('start')
    if 'dynamic_intervals' in options:
        train_cfg['dynamic_intervals'] = [tuple(x) for x in options.pop('dynamic_intervals')]
    checkpoint = pop_all(options, ('rule', 'greater_keys', 'less_keys'))
    save_best = options.pop('save_best', None)
    if save_best is not None:
        # 2.x named a metric by its bare key (segm_mAP); native keys carry the metric's prefix
        checkpoint['save_best'] = save_best if save_best == 'auto' else f'coco/{save_best}'
        checkpoint = {'save_best': checkpoint.pop('save_best'), **checkpoint}
    report.leftover(options, 'evaluation')

    out: dict[str, Any] = dict(train_cfg=train_cfg, checkpoint=checkpoint)
    for split in ('val', 'test'):
        loader = loaders.get(f'{split}_dataloader')
        if loader is None:
            continue
        out[f'{split}_evaluator'] = dict(
            type='CocoMetric',
            ann_file=full_ann_file(loader['dataset']),
            **metric_args,
            backend_args=loader['dataset'].get('backend_args'),
        )
    if 'val_evaluator' not in out and evaluation is not None:
        report.warn('evaluation: there is no data.val, so nothing is validated during training')
    if 'test_evaluator' not in out and 'val_evaluator' in out:
        out['test_evaluator'] = out['val_evaluator']
    report.note(f'evaluation -> val_evaluator CocoMetric(metric={metric_args["metric"]!r}), '
                f'val_interval={train_cfg["val_interval"]}')  # fmt: skip
    return out
