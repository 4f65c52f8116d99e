"""2.x ``runner``, ``optimizer``, ``optimizer_config``, ``fp16`` and ``lr_config`` -> native keys.

Warmup ends follow mmdetection 3.x's own configs: a 2.x ``warmup_iters=500`` becomes
``LinearLR(end=500)``, which reaches the full rate at iteration 499 where mmcv's hook reached it
at 500 (under 0.2% of the rate apart, during warmup only). Constant and exponential warmups end
at the same iteration as the linear one.
"""

from __future__ import annotations

from typing import Any

from .report import Report, pop_all

_EPOCH_RUNNERS = ('EpochBasedRunner', 'EpochBasedRunnerAmp')
_FP16_HOOKS = ('Fp16OptimizerHook', 'GradientCumulativeFp16OptimizerHook')
_CUMULATIVE_HOOKS = ('GradientCumulativeOptimizerHook', 'GradientCumulativeFp16OptimizerHook')
_INF = float('inf')


def translate_runner(runner: dict | None, total_epochs: Any, report: Report) -> dict | None:
    """``runner=dict(type, max_epochs | max_iters)`` (or old ``total_epochs``) -> ``train_cfg``.

    Sets ``report.by_epoch`` and ``report.max_length`` for the schedulers. None when the config
    has neither key.
    """
    if runner is None:
        if total_epochs is None:
            return None
        runner = dict(type='EpochBasedRunner', max_epochs=total_epochs)
        report.note(f'total_epochs={total_epochs} -> train_cfg.max_epochs')
    args = dict(runner)
    kind = args.pop('type', 'EpochBasedRunner')
    if kind in _EPOCH_RUNNERS:
        max_epochs = args.pop('max_epochs', total_epochs)
        if max_epochs is None:
            raise report.error(f'runner: {kind} needs max_epochs')
        if kind == 'EpochBasedRunnerAmp':
            report.note('runner: EpochBasedRunnerAmp -> EpochBasedTrainLoop (mixed precision '
                        'follows optimizer_config.use_fp16)')  # fmt: skip
        report.by_epoch, report.max_length = True, max_epochs
        loop = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
    elif kind == 'IterBasedRunner':
        if 'max_iters' not in args:
            raise report.error('runner: IterBasedRunner needs max_iters')
        report.by_epoch, report.max_length = False, args.pop('max_iters')
        loop = dict(type='IterBasedTrainLoop', max_iters=report.max_length)
    else:
        raise report.error(
            f'runner: {kind!r} is not a 2.x runner instseg knows (EpochBasedRunner, '
            'IterBasedRunner); write train_cfg natively'
        )
    report.leftover(args, 'runner', strict=True)
    report.note(f'runner {kind} -> train_cfg {loop["type"]}')
    return loop


def translate_optim(
    optimizer: dict | None, hook: dict | None, fp16: dict | None, report: Report
) -> tuple[dict, dict]:
    """Return (``optim_wrapper`` fields, ``model_wrapper_cfg`` fields) for the given 2.x keys.

    ``optim_wrapper`` holds only what the keys set (no ``optimizer`` without ``optimizer=``), so
    that it can be merged into a native one.
    """
    wrapper: dict[str, Any] = dict(type='OptimWrapper')
    if optimizer is not None:
        opt = {k: v for k, v in optimizer.items() if k != '_delete_'}
        extra = pop_all(opt, ('paramwise_cfg', 'constructor'))
        wrapper['optimizer'] = opt  # without a type it only updates a native optimizer
        if extra.get('constructor') is not None:
            wrapper['constructor'] = extra['constructor']
        if extra.get('paramwise_cfg') is not None:
            wrapper['paramwise_cfg'] = extra['paramwise_cfg']
        report.note(f'optimizer {opt.get("type", "settings")} -> optim_wrapper.optimizer')

    args = dict(hook or {})
    args.pop('_delete_', None)
    kind = args.pop('type', 'OptimizerHook')
    model_wrapper: dict[str, Any] = {}
    loss_scale: Any = None
    accumulate = 1
    if kind in _FP16_HOOKS:
        loss_scale = args.pop('loss_scale', 512.0)
    if kind in _CUMULATIVE_HOOKS:
        accumulate = args.pop('cumulative_iters', 1)
    if kind == 'DistOptimizerHook':  # Swin-Transformer-Object-Detection's apex hook
        accumulate = args.pop('update_interval', 1)
        if args.pop('use_fp16', False):
            loss_scale = 'dynamic'  # apex O1 scaled losses dynamically
            report.note('optimizer_config.use_fp16 (apex) -> AmpOptimWrapper (torch.autocast)')
        for name in ('coalesce', 'bucket_size_mb'):
            args.pop(name, None)
    elif kind not in ('OptimizerHook', *_FP16_HOOKS, *_CUMULATIVE_HOOKS):
        raise report.error(f'optimizer_config: {kind!r} is not a 2.x optimizer hook instseg knows')
    grad_clip = args.pop('grad_clip', None)
    if grad_clip is not None:
        wrapper['clip_grad'] = dict(grad_clip)
        report.note('optimizer_config.grad_clip -> optim_wrapper.clip_grad')
    if args.pop('detect_anomalous_params', False):
        model_wrapper['detect_anomalous_params'] = True
    args.pop('distributed', None)  # set by the launcher
    report.leftover(args, 'optimizer_config', strict=True)

    if fp16 is not None:
        fp16 = dict(fp16)
        loss_scale = fp16.pop('loss_scale', 512.0)  # mmcv's Fp16OptimizerHook default
        report.leftover(fp16, 'fp16', strict=True)
    if loss_scale is not None:
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper['loss_scale'] = loss_scale
        report.note(f'fp16 -> optim_wrapper AmpOptimWrapper(loss_scale={loss_scale!r})')
    if accumulate != 1:
        wrapper['accumulative_counts'] = accumulate
        report.note(f'gradient accumulation over {accumulate} -> accumulative_counts')
    return wrapper, model_wrapper


def translate_lr(lr_config: dict | None, optimizer: dict | None, report: Report) -> list[dict]:
    """``lr_config`` (policy + warmup) -> ``param_scheduler``; empty for a constant rate.

    ``optimizer`` (its lr and paramwise lr_mults) tells whether a step policy's ``min_lr``
    would ever bind, since native step schedulers have no floor.
    """
    if lr_config is None:
        return []
    args = dict(lr_config)
    args.pop('_delete_', None)
    if 'policy' not in args:
        raise report.error('lr_config: needs a policy (step, CosineAnnealing, poly, exp, fixed)')
    written = str(args.pop('policy'))
    policy = written.lower()
    by_epoch = args.pop('by_epoch', report.by_epoch)
    if by_epoch and not report.by_epoch:
        raise report.error('lr_config.by_epoch=True needs an epoch-based runner')
    schedulers = _warmup(args, report)
    main = _main_policy(policy, written, args, by_epoch, optimizer, report)
    if main is not None:
        schedulers.append(main)
    report.leftover(args, 'lr_config', strict=True)
    report.note(f'lr_config policy {written} -> param_scheduler '
                f'{[s["type"] for s in schedulers]}')  # fmt: skip
    return schedulers


def _warmup(args: dict, report: Report) -> list[dict]:
    kind = args.pop('warmup', None)
    length = args.pop('warmup_iters', 0)
    ratio = args.pop('warmup_ratio', 0.1)
    in_epochs = args.pop('warmup_by_epoch', False)
    if kind is None or length <= 0:
        return []
    # warmup counted in epochs still changes the rate every iteration in 2.x
    unit = dict(by_epoch=True, convert_to_iter_based=True) if in_epochs else dict(by_epoch=False)
    if kind == 'linear':
        return [dict(type='LinearLR', start_factor=ratio, **unit, begin=0, end=length)]
    if kind == 'constant':
        return [dict(type='ConstantLR', factor=ratio, **unit, begin=0, end=length)]
    if kind == 'exp':
        # ratio ** (1 - i / (length - 1)): a permanent factor ratio times gamma ** i up to length-1
        gamma = ratio ** (-1.0 / max(length - 1, 1))
        return [
            dict(type='ConstantLR', factor=ratio, **unit, begin=0),
            dict(type='ExponentialLR', gamma=gamma, **unit, begin=0, end=length),
        ]
    raise report.error(f"lr_config.warmup: {kind!r} is not one of 'linear', 'constant', 'exp'")


def _main_policy(
    policy: str, written: str, args: dict, by_epoch: bool, optimizer: dict | None, report: Report
) -> dict | None:
    if policy == 'fixed':
        return None
    if report.max_length is None:
        raise report.error('lr_config: the schedule needs the runner length (runner=dict(...))')
    # An iteration-wise policy under an epoch-based runner ends with the last epoch's last
    # iteration: written per epoch and converted, as native configs do.
    if report.by_epoch and not by_epoch:
        unit = dict(by_epoch=True, convert_to_iter_based=True)
    else:
        unit = dict(by_epoch=by_epoch)
    span = dict(begin=0, end=report.max_length)
    if policy == 'step':
        step = args.pop('step')
        gamma = args.pop('gamma', 0.1)
        min_lr = args.pop('min_lr', None)
        if report.by_epoch and not by_epoch:  # milestones counted in iterations
            unit, span = dict(by_epoch=False), dict(begin=0)
        if isinstance(step, int):
            count = max(report.max_length - 1, 0) // step
            out = dict(type='StepLR', **span, **unit, step_size=step, gamma=gamma)
        else:
            count = len(step)
            out = dict(type='MultiStepLR', **span, **unit, milestones=list(step), gamma=gamma)
        if min_lr is not None and _smallest_lr(optimizer) * gamma**count < min_lr:
            raise report.error(
                f'lr_config.min_lr={min_lr}: the step schedule would be floored there, which '
                'native schedulers cannot do; remove min_lr or write param_scheduler natively'
            )
        return out
    if policy in ('cosineannealing', 'cosine'):
        floor = pop_all(args, ('min_lr', 'min_lr_ratio'))
        if len(floor) != 1:
            raise report.error(
                'lr_config: CosineAnnealing needs exactly one of min_lr, min_lr_ratio'
            )
        name, value = next(iter(floor.items()))
        eta = {'min_lr': 'eta_min', 'min_lr_ratio': 'eta_min_ratio'}[name]
        return dict(type='CosineAnnealingLR', **{eta: value}, **span, T_max=span['end'], **unit)
    if policy == 'poly':
        power = args.pop('power', 1.0)
        eta_min = args.pop('min_lr', 0.0)
        return dict(type='PolyLR', eta_min=eta_min, power=power, **span, **unit)
    if policy == 'exp':
        return dict(type='ExponentialLR', gamma=args.pop('gamma'), **span, **unit)
    raise report.error(
        f'lr_config.policy {written!r} has no translation (step, CosineAnnealing, poly, exp, '
        'fixed); write param_scheduler natively'
    )


def _smallest_lr(optimizer: dict | None) -> float:
    """The lowest learning rate any parameter group of ``optimizer`` starts from."""
    if not optimizer or 'lr' not in optimizer:
        return _INF
    mults = [1.0]
    paramwise = optimizer.get('paramwise_cfg') or {}
    mults += [v.get('lr_mult', 1.0) for v in (paramwise.get('custom_keys') or {}).values()]
    mults += [paramwise[k] for k in ('bias_lr_mult', 'dcn_offset_lr_mult') if k in paramwise]
    return optimizer['lr'] * min(mults)
