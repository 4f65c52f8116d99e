"""2.x runtime keys -> native hooks, environment, visualizer, loading and randomness settings."""

from __future__ import annotations

from typing import Any

from instseg.registry import HOOKS

from .report import Report, pop_all

# configs/_base_/default_runtime.py, for 2.x configs that bring no native runtime
DEFAULT_HOOKS = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    curves=dict(type='TrainingCurvesHook'),
)
DEFAULT_ENV = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
DEFAULT_VISUALIZER = 'DetLocalVisualizer'
# 2.x logger hooks -> mmengine visualisation backends
_LOGGER_BACKENDS = {
    'TensorboardLoggerHook': 'TensorboardVisBackend',
    'WandbLoggerHook': 'WandbVisBackend',
    'MMDetWandbHook': 'WandbVisBackend',
    'MlflowLoggerHook': 'MLflowVisBackend',
}
_CHECKPOINT_OPTIONS = (
    'interval', 'by_epoch', 'save_optimizer', 'out_dir', 'max_keep_ckpts', 'save_last',
)  # fmt: skip


def translate_checkpoint(checkpoint_config: Any, report: Report) -> dict | None:
    """``checkpoint_config`` -> the CheckpointHook's options (None: 2.x saved no checkpoints)."""
    if checkpoint_config is None:
        return None
    args = dict(checkpoint_config)
    out = dict(type='CheckpointHook', **pop_all(args, _CHECKPOINT_OPTIONS))
    if not report.by_epoch:  # mmcv's IterBasedRunner defaulted it so
        out.setdefault('by_epoch', False)
    for name in ('create_symlink', 'sync_buffer', 'file_client_args', 'meta'):
        if args.pop(name, None) is not None:
            report.note(f'checkpoint_config.{name}: not needed; dropped')
    report.leftover(args, 'checkpoint_config')
    report.note('checkpoint_config -> default_hooks.checkpoint')
    return out


def translate_log(log_config: Any, report: Report) -> tuple[dict | None, list[dict]]:
    """``log_config`` -> (LoggerHook options, visualisation backends after LocalVisBackend)."""
    if log_config is None:
        return None, []
    args = dict(log_config)
    logger = dict(type='LoggerHook', interval=args.pop('interval', 10))
    backends: list[dict] = []
    for hook in args.pop('hooks', []):
        hook = dict(hook)
        kind = hook.pop('type')
        hook.pop('by_epoch', None)  # log_processor.by_epoch follows the runner
        if kind == 'TextLoggerHook':
            logger.update(pop_all(hook, ('ignore_last', 'interval_exp_name')))
            hook.pop('reset_flag', None)
            report.leftover(hook, 'log_config.hooks.TextLoggerHook')
        elif kind in _LOGGER_BACKENDS:
            backend = dict(type=_LOGGER_BACKENDS[kind])
            if kind == 'TensorboardLoggerHook':
                hook.pop('log_dir', None)  # written under the work dir
            else:
                backend.update(pop_all(hook, ('init_kwargs', 'exp_name', 'tags', 'params')))
            for name in ('interval', 'ignore_last', 'reset_flag', 'commit', 'with_step'):
                hook.pop(name, None)
            report.leftover(hook, f'log_config.hooks.{kind}')
            backends.append(backend)
            report.note(f'log_config {kind} -> vis_backends {backend["type"]}')
        else:
            report.warn(f'log_config.hooks: {kind!r} has no native counterpart; ignored')
    args.pop('by_epoch', None)
    report.leftover(args, 'log_config')
    return logger, backends


def translate_custom_hooks(hooks: list, report: Report) -> list[dict]:
    """2.x ``custom_hooks``: kept, except the ones instseg does without."""
    out = []
    for hook in hooks:
        kind = hook.get('type')
        if kind == 'NumClassCheckHook':
            report.note('custom_hooks NumClassCheckHook: dropped (configs check num_classes)')
            continue
        if HOOKS.get(kind) is None:
            report.warn(
                f'custom_hooks {kind!r}: kept as written, but not registered in instseg; the '
                'run fails unless custom_imports registers it'
            )
        out.append(dict(hook))
    return out


def translate_environment(cfg: dict, report: Report) -> dict[str, Any]:
    """Loading, resuming, distributed and random-seed keys -> native top-level keys."""
    out: dict[str, Any] = {}
    env: dict[str, Any] = {}
    if cfg.get('dist_params') is not None:
        env['dist_cfg'] = dict(cfg['dist_params'])
        report.note('dist_params -> env_cfg.dist_cfg')
    if 'cudnn_benchmark' in cfg:
        env['cudnn_benchmark'] = cfg['cudnn_benchmark']
    mp = {k: cfg[k] for k in ('mp_start_method', 'opencv_num_threads') if k in cfg}
    if mp:
        env['mp_cfg'] = mp
    if env:
        out['env_cfg'] = env
    if 'load_from' in cfg:
        out['load_from'] = cfg['load_from']
    if cfg.get('resume_from') is not None:
        out['load_from'], out['resume'] = cfg['resume_from'], True  # 2.x let it win over load_from
        report.note('resume_from -> load_from + resume=True')
    elif cfg.get('auto_resume'):
        out['resume'] = True
        report.note('auto_resume -> resume=True (the latest checkpoint in the work dir)')
    randomness = {k: cfg[k] for k in ('seed', 'deterministic') if cfg.get(k) is not None}
    if randomness:
        out['randomness'] = randomness
        report.note(f'{sorted(randomness)} -> randomness')
    workflow = cfg.get('workflow')
    if workflow is not None and any(tuple(step)[0] != 'train' for step in workflow):
        report.warn(
            f'workflow={workflow}: the val phase (2.x computed validation losses) is ignored; '
            'validation runs the metric as evaluation= says'
        )
    gpu_ids = cfg.get('gpu_ids')
    if gpu_ids is not None:
        if len(gpu_ids) > 1:
            report.warn(f'gpu_ids={gpu_ids}: one process uses one GPU; launch several '
                        '(tools/dist_train.sh) for more')  # fmt: skip
        else:
            report.note('gpu_ids: ignored (choose the GPU with CUDA_VISIBLE_DEVICES)')
    if cfg.get('find_unused_parameters'):
        out['model_wrapper_cfg'] = dict(find_unused_parameters=True)
    if 'device' in cfg:
        report.note(f'device={cfg["device"]!r}: ignored (the runner uses the GPU when present)')
    return out
