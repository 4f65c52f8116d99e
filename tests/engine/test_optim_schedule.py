"""optim_wrapper with paramwise_cfg and warmup + step/cosine schedules, as configs write them."""

from __future__ import annotations

import math

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

from instseg.registry import MODELS

init_default_scope('instseg')


def _model() -> torch.nn.Module:
    return MODELS.build(dict(type='ResNet', depth=18, norm_eval=False))


def test_paramwise_cfg_removes_decay_from_norms_and_biases() -> None:
    model = _model()
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={'layer4': dict(lr_mult=0.1)}),
        ),
    )
    decay = {}
    lrs = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
            lrs[names[id(p)]] = group['lr']
    assert decay['bn1.weight'] == 0.0 and decay['layer2.0.bn1.bias'] == 0.0
    assert decay['conv1.weight'] == pytest.approx(0.05)
    assert lrs['layer4.0.conv1.weight'] == pytest.approx(1e-5)
    assert lrs['layer1.0.conv1.weight'] == pytest.approx(1e-4)


def _lrs(schedulers: list[dict], iters: int, iters_per_epoch: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    built = []
    for cfg in schedulers:
        cfg = dict(cfg)
        if cfg.get('by_epoch', True):
            cfg = dict(cfg, epoch_length=iters_per_epoch)
        built.append(PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer)))
    seen = []
    for i in range(iters):
        seen.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for s in built:
            if not s.by_epoch or (i + 1) % iters_per_epoch == 0:
                s.step()
    return seen


def test_warmup_then_steps_as_schedule_1x() -> None:
    # schedule_1x: linear warmup over 500 iterations from 0.001x, x0.1 at epochs 8 and 11
    schedulers = [
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
    ]
    lrs = _lrs(schedulers, iters=12 * 100, iters_per_epoch=100)
    assert lrs[0] == pytest.approx(0.02 * 0.001)
    # mmengine's LinearLR reaches the end factor at its last step: (end - begin - 1) intervals
    assert lrs[250] == pytest.approx(0.02 * (0.001 + 0.999 * 250 / 499))
    assert lrs[499] == pytest.approx(0.02)
    assert lrs[600] == pytest.approx(0.02)
    assert lrs[800] == pytest.approx(0.002) and lrs[1100] == pytest.approx(0.0002)


def test_warmup_then_cosine() -> None:
    schedulers = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
        dict(type='CosineAnnealingLR', T_max=100, eta_min=0.0, by_epoch=False, begin=0, end=100),
    ]
    lrs = _lrs(schedulers, iters=100, iters_per_epoch=1000)
    assert lrs[50] == pytest.approx(0.02 * (1 + math.cos(math.pi * 50 / 100)) / 2, rel=1e-6)
    assert lrs[99] < 0.001
