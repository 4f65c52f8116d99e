"""The whole translation: a merged 2.x config in, a native (mmdetection 3.x keys) config out."""

from __future__ import annotations

import copy
from typing import Any

from mmengine.config import Config

from .data import translate_data
from .detect import SETTINGS_2X, is_model_cfg
from .evaluation import translate_evaluation
from .model import data_preprocessor, translate_model
from .pipeline import is_2x_step, translate_pipeline
from .printer import format_config
from .report import Report
from .runtime import (
    DEFAULT_ENV,
    DEFAULT_HOOKS,
    DEFAULT_VISUALIZER,
    translate_checkpoint,
    translate_custom_hooks,
    translate_environment,
    translate_log,
)
from .schedule import translate_lr, translate_optim, translate_runner

# Keys a native config may carry; they pass through, and 2.x translations merge into them.
NATIVE_KEYS = (
    'default_scope', 'custom_imports', 'work_dir', 'launcher', 'experiment_name',
    'model', 'model_wrapper_cfg', 'train_dataloader', 'val_dataloader', 'test_dataloader',
    'val_evaluator', 'test_evaluator', 'train_cfg', 'val_cfg', 'test_cfg', 'optim_wrapper',
    'param_scheduler', 'auto_scale_lr', 'default_hooks', 'custom_hooks', 'env_cfg',
    'vis_backends', 'visualizer', 'log_processor', 'log_level', 'load_from', 'resume',
    'randomness', 'tta_model', 'tta_pipeline',
)  # fmt: skip
# Other 2.x top-level keys the translation reads (beyond SETTINGS_2X).
_READ_2X = (
    'data', 'gpu_ids', 'seed', 'deterministic', 'cudnn_benchmark', 'mp_start_method',
    'opencv_num_threads', 'find_unused_parameters', 'device', 'auto_resume',
)  # fmt: skip


def translate_2x(cfg: Config | dict, source: str = '<config>') -> tuple[Config, list[str]]:
    """Translate a merged 2.x config; return the native config and what was translated.

    Raises :class:`Config2xError` for a setting whose run instseg cannot reproduce; warns
    (:class:`UpgradeWarning`) for what it ignores.
    """
    src = cfg.to_dict() if isinstance(cfg, Config) else copy.deepcopy(dict(cfg))
    report = Report(source)
    if src.get('momentum_config') is not None:
        raise report.error(
            'momentum_config: momentum schedules have no translation; without it the run would '
            'differ, so write param_scheduler natively (e.g. CosineAnnealingMomentum)'
        )
    out = {k: v for k, v in src.items() if k in NATIVE_KEYS}
    top_train = out.pop('train_cfg') if is_model_cfg(out.get('train_cfg')) else None
    top_test = out.pop('test_cfg') if is_model_cfg(out.get('test_cfg')) else None

    loop = translate_runner(src.get('runner'), src.get('total_epochs'), report)
    if loop is None:
        _length_from_native(out.get('train_cfg'), report)

    loaders = translate_data(src['data'], report.by_epoch, report, src) if 'data' in src else {}
    for key, value in loaders.items():
        _put(out, key, value, report)
    evaluation = None
    if loaders or 'evaluation' in src:
        # evaluators follow the dataloaders, translated or native
        native_loaders = {k: out[k] for k in ('val_dataloader', 'test_dataloader') if k in out}
        evaluation = translate_evaluation(src.get('evaluation'), native_loaders, report)
        for key in ('val_evaluator', 'test_evaluator'):
            if key in evaluation:
                _put(out, key, evaluation[key], report)

    train_cfg = dict(loop or {})
    if evaluation is not None and 'val_evaluator' in out:
        train_cfg.update(evaluation['train_cfg'])
    if train_cfg:
        _put(out, 'train_cfg', train_cfg, report)
    if 'val_dataloader' in out and 'val_evaluator' in out:
        out.setdefault('val_cfg', dict(type='ValLoop'))
    if 'test_dataloader' in out and 'test_evaluator' in out:
        out.setdefault('test_cfg', dict(type='TestLoop'))

    if 'model' in src:
        found = report.norm or report.pad or src.get('img_norm_cfg') is not None
        model = src['model']
        if found or 'data_preprocessor' not in model:
            preprocessor = data_preprocessor(report, src.get('img_norm_cfg'))
        else:
            preprocessor = {}
        out['model'] = translate_model(model, top_train, top_test, preprocessor, report)

    _tta(out, report)
    _schedule(src, out, report)
    _runtime(src, out, evaluation, report)
    _helpers(src, out, report)
    out.setdefault('default_scope', 'instseg')
    out = _ordered(out)
    # the text a translated Config reports is the native one, not the 2.x file's
    text = format_config(out, f'Translated from the mmdetection 2.x config {source}.')
    return Config(out, cfg_text=text, filename=source), report.notes


# The order native configs are written in; other keys (dataset_type, pipelines...) go after model.
_ORDER_HEAD = ('default_scope', 'custom_imports', 'model', 'model_wrapper_cfg')
_ORDER_TAIL = (
    'train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator',
    'train_cfg', 'val_cfg', 'test_cfg', 'optim_wrapper', 'param_scheduler', 'auto_scale_lr',
    'default_hooks', 'custom_hooks', 'env_cfg', 'vis_backends', 'visualizer', 'log_processor',
    'log_level', 'load_from', 'resume', 'randomness', 'launcher', 'work_dir',
)  # fmt: skip


def _ordered(cfg: dict) -> dict:
    middle = [k for k in cfg if k not in _ORDER_HEAD and k not in _ORDER_TAIL]
    return {k: cfg[k] for k in (*_ORDER_HEAD, *middle, *_ORDER_TAIL) if k in cfg}


def _tta(out: dict, report: Report) -> None:
    """A 2.x multi-scale/flip test -> ``tta_pipeline`` and ``tta_model`` for ``--tta``."""
    if not report.tta or 'tta_pipeline' in out:
        return
    tests = [name for name in report.tta if '.test' in name]
    out['tta_pipeline'] = report.tta[tests[0] if tests else next(iter(report.tta))]
    # 2.x merged the views' detections with the model's own test NMS
    rcnn = (out.get('model') or {}).get('test_cfg', {}).get('rcnn', {})
    if isinstance(rcnn, dict) and 'nms' in rcnn:
        tta_cfg = dict(nms=rcnn['nms'], max_per_img=rcnn.get('max_per_img', 100))
    else:
        tta_cfg = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    out.setdefault('tta_model', dict(type='DetTTAModel', tta_cfg=tta_cfg))
    report.note('MultiScaleFlipAug scales/flips -> tta_pipeline + tta_model (tools/test.py --tta)')


def _length_from_native(train_cfg: Any, report: Report) -> None:
    if isinstance(train_cfg, dict):
        if 'max_iters' in train_cfg:
            report.by_epoch, report.max_length = False, train_cfg['max_iters']
        elif 'max_epochs' in train_cfg:
            report.max_length = train_cfg['max_epochs']


def _schedule(src: dict, out: dict, report: Report) -> None:
    if any(k in src for k in ('optimizer', 'optimizer_config', 'fp16')):
        wrapper, model_wrapper = translate_optim(
            src.get('optimizer'), src.get('optimizer_config'), src.get('fp16'), report
        )
        _put(out, 'optim_wrapper', wrapper, report, whole=False)
        if 'type' not in out['optim_wrapper'].get('optimizer', {}):
            raise report.error('optimizer: missing, or without a type (e.g. SGD, AdamW)')
        if model_wrapper:
            _put(out, 'model_wrapper_cfg', model_wrapper, report)
    if 'lr_config' in src:
        optimizer = dict(src.get('optimizer') or {})
        out['param_scheduler'] = translate_lr(src['lr_config'], optimizer, report)


def _runtime(src: dict, out: dict, evaluation: dict | None, report: Report) -> None:
    hooks = copy.deepcopy(out.get('default_hooks') or DEFAULT_HOOKS)
    if 'checkpoint_config' in src:
        hooks['checkpoint'] = _over(
            hooks.get('checkpoint'), translate_checkpoint(src['checkpoint_config'], report)
        )
    if evaluation is not None and evaluation['checkpoint'] and 'val_evaluator' in out:
        if hooks.get('checkpoint') is None:  # 2.x kept the best checkpoint without this hook
            hooks['checkpoint'] = dict(type='CheckpointHook', interval=-1)
        hooks['checkpoint'].update(evaluation['checkpoint'])
    backends: list[dict] = []
    if 'log_config' in src:
        logger, backends = translate_log(src['log_config'], report)
        hooks['logger'] = _over(hooks.get('logger'), logger)
    out['default_hooks'] = hooks
    if 'log_processor' not in out:
        out['log_processor'] = dict(type='LogProcessor', window_size=50, by_epoch=report.by_epoch)
    if 'visualizer' not in out or backends:
        vis = copy.deepcopy(out.get('vis_backends') or [dict(type='LocalVisBackend')]) + backends
        out['vis_backends'] = vis
        visualizer = dict(out.get('visualizer') or dict(type=DEFAULT_VISUALIZER))
        out['visualizer'] = dict(visualizer, vis_backends=vis)
    if src.get('custom_hooks') and any(k in src for k in SETTINGS_2X):
        out['custom_hooks'] = translate_custom_hooks(src['custom_hooks'], report)
        if not out['custom_hooks']:
            del out['custom_hooks']
    environment = translate_environment(src, report)
    env = copy.deepcopy(out.get('env_cfg') or DEFAULT_ENV)
    for key, value in environment.pop('env_cfg', {}).items():
        env[key] = dict(env.get(key) or {}, **value) if isinstance(value, dict) else value
    out['env_cfg'] = env
    for key, value in environment.items():
        _put(out, key, value, report)
    out.setdefault('log_level', 'INFO')
    out.setdefault('load_from', None)
    out.setdefault('resume', False)


def _over(native: dict | None, translated: dict | None) -> dict | None:
    """A translated hook over the native (or default) one; None (2.x: no such hook) disables."""
    if translated is None or not native:
        return translated
    return merge(native, translated)


def _helpers(src: dict, out: dict, report: Report) -> None:
    """Top-level variables that are neither native nor 2.x settings (dataset_type, data_root...).

    Pipelines among them are translated too (quietly: the dataloaders already reported), so the
    file reads natively throughout; the rest stay as they were.
    """
    kept = []
    for key, value in src.items():
        if key in NATIVE_KEYS or key in SETTINGS_2X or key in _READ_2X or key in out:
            continue
        if isinstance(value, list) and any(is_2x_step(step) for step in value):
            out[key] = translate_pipeline(value, key, _Quiet(report.source), test='test' in key)
        else:
            out[key] = value
            kept.append(key)
    if kept:
        report.note(f'kept as plain config variables (not read by the runner): {", ".join(kept)}')


class _Quiet(Report):
    def warn(self, message: str) -> None:
        self.notes.append(message)


def _put(out: dict, key: str, value: Any, report: Report, whole: bool = True) -> None:
    """Set ``out[key]``; a native value already there is merged (the 2.x one wins).

    ``whole=False``: the top-level dict merges even when its type changes (an optim_wrapper
    that becomes AmpOptimWrapper keeps the native optimizer).
    """
    if key in out and isinstance(out[key], dict) and isinstance(value, dict):
        out[key] = merge(out[key], value, whole)
        report.note(f'{key}: merged into the native {key} already in the config')
    else:
        out[key] = value


def merge(base: dict, new: dict, whole: bool = True) -> dict:
    """``new`` over ``base``, recursively; a dict of another ``type`` replaces the old one whole
    (at the top level only when ``whole``)."""
    if whole and 'type' in new and 'type' in base and new['type'] != base['type']:
        return copy.deepcopy(new)
    merged = copy.deepcopy(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
