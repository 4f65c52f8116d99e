"""2.x optimizer, optimizer_config, fp16, lr_config and runner keys -> optim_wrapper, schedulers."""

from __future__ import annotations

import math

import pytest
import torch
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

from instseg.compat.mmdet2 import translate_2x

init_default_scope('instseg')


def translate(**keys) -> dict:
    """Translate a 2.x schedule (SGD, step at 8 and 11, 12 epochs) with ``keys`` replaced."""
    cfg = dict(
        model=dict(type='MaskRCNN', backbone=dict(type='ResNet', depth=18)),
        optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
        optimizer_config=dict(grad_clip=None),
        lr_config=dict(policy='step', step=[8, 11]),
        runner=dict(type='EpochBasedRunner', max_epochs=12),
    )
    cfg.update(keys)
    return translate_2x(cfg, source='old.py')[0].to_dict()


@pytest.mark.parametrize(
    ('keys', 'expected'),
    [
        (
            dict(optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2))),
            dict(type='OptimWrapper', clip_grad=dict(max_norm=35, norm_type=2)),
        ),
        (dict(fp16=dict(loss_scale=512.0)), dict(type='AmpOptimWrapper', loss_scale=512.0)),
        (
            dict(optimizer_config=dict(type='Fp16OptimizerHook', loss_scale='dynamic')),
            dict(type='AmpOptimWrapper', loss_scale='dynamic'),
        ),
        (  # Swin-Transformer-Object-Detection: apex through its DistOptimizerHook
            dict(
                optimizer_config=dict(
                    type='DistOptimizerHook', update_interval=2, grad_clip=None, coalesce=True,
                    bucket_size_mb=-1, use_fp16=True,
                ),
                runner=dict(type='EpochBasedRunnerAmp', max_epochs=12),
                fp16=None,
            ),
            dict(type='AmpOptimWrapper', loss_scale='dynamic', accumulative_counts=2),
        ),
        (
            dict(optimizer_config=dict(type='GradientCumulativeOptimizerHook', cumulative_iters=4)),
            dict(type='OptimWrapper', accumulative_counts=4),
        ),
    ],
)  # fmt: skip
def test_optimizer_hooks_and_fp16_become_the_optim_wrapper(keys: dict, expected: dict) -> None:
    wrapper = translate(**keys)['optim_wrapper']
    optimizer = wrapper.pop('optimizer')
    assert optimizer == dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
    assert wrapper == expected


def _lrs(schedulers: list[dict], points: list[int], epoch_length: int) -> list[float]:
    """The learning rate (base 1.0) at each iteration in ``points``, as the runner steps it."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    built = [
        PARAM_SCHEDULERS.build(
            dict(s, epoch_length=epoch_length) if s.get('by_epoch', True) else s,
            default_args=dict(optimizer=optimizer),
        )
        for s in schedulers
    ]
    seen = {}
    for it in range(max(points) + 1):
        seen[it] = optimizer.param_groups[0]['lr']
        optimizer.step()
        for s in built:
            if not s.by_epoch or (it + 1) % epoch_length == 0:
                s.step()
    return [seen[p] for p in points]


def test_cosine_policy_by_epoch_follows_mmcv() -> None:
    lr_config = dict(policy='CosineAnnealing', min_lr_ratio=0.01, warmup='linear',
                     warmup_iters=5, warmup_ratio=0.1)  # fmt: skip
    schedulers = translate(lr_config=lr_config)['param_scheduler']
    lrs = _lrs(schedulers, [0, 15, 20 * 3, 20 * 11 + 7], epoch_length=20)
    assert lrs[0] == pytest.approx(0.1)
    for lr, epoch in zip(lrs[1:], (0, 3, 11), strict=True):  # mmcv: once per epoch
        assert lr == pytest.approx(0.01 + 0.99 * (1 + math.cos(math.pi * epoch / 12)) / 2)


@pytest.mark.parametrize('kind', ['constant', 'exp'])
def test_constant_and_exp_warmup(kind: str) -> None:
    lr_config = dict(policy='step', step=[8], warmup=kind, warmup_iters=10, warmup_ratio=0.01)
    schedulers = translate(lr_config=lr_config)['param_scheduler']
    points = [0, 4, 8, 9, 10, 30]
    lrs = _lrs(schedulers, points, epoch_length=50)
    if kind == 'constant':
        expected = [0.01, 0.01, 0.01, 1.0, 1.0, 1.0]
    else:  # mmcv: ratio ** (1 - i / W), full at the end (here W - 1: native warmups end there)
        expected = [0.01 ** (1 - min(i, 9) / 9) for i in points]
    assert lrs == pytest.approx(expected)


def test_iteration_wise_cosine_under_epoch_runner_converts() -> None:
    sched = translate(lr_config=dict(policy='CosineAnnealing', min_lr=0.0, by_epoch=False))
    assert sched['param_scheduler'] == [
        dict(type='CosineAnnealingLR', eta_min=0.0, begin=0, end=12, T_max=12, by_epoch=True,
             convert_to_iter_based=True)
    ]  # fmt: skip


def test_step_every_n_epochs_exp_policy_and_warmup_by_epoch() -> None:
    every = translate(lr_config=dict(policy='step', step=3, gamma=0.5))['param_scheduler']
    assert every == [dict(type='StepLR', begin=0, end=12, by_epoch=True, step_size=3, gamma=0.5)]
    exp = translate(
        lr_config=dict(policy='exp', gamma=0.9, warmup='linear', warmup_iters=2,
                       warmup_by_epoch=True)
    )['param_scheduler']  # fmt: skip
    assert exp == [
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, convert_to_iter_based=True,
             begin=0, end=2),
        dict(type='ExponentialLR', gamma=0.9, begin=0, end=12, by_epoch=True),
    ]  # fmt: skip


def test_min_lr_is_accepted_when_it_never_binds() -> None:
    # 0.02 * 0.1 ** 2 = 2e-4 stays above the floor, even for a group at lr_mult 0.5
    optimizer = dict(
        type='SGD', lr=0.02, paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=0.5)})
    )
    cfg = translate(optimizer=optimizer, lr_config=dict(policy='step', step=[8, 11], min_lr=1e-4))
    assert cfg['param_scheduler'][0]['milestones'] == [8, 11]
    assert cfg['optim_wrapper']['paramwise_cfg'] == dict(custom_keys={'head': dict(lr_mult=0.5)})
