"""LossGuardHook: a NaN/Inf loss stops training or skips the step; a NaN model is never saved."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from engine_toy import toy_runner

from instseg.engine import NonFiniteCheckpointError
from instseg.engine.hooks import LossGuardHook

SKIP = dict(loss_guard=dict(type='LossGuardHook', skip_nonfinite=True, max_skips=2))


def _steps(runner) -> list[int]:
    return sorted({int(s['step']) for s in runner.optim_wrapper.optimizer.state.values()})


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_nonfinite_loss_stops_training_naming_where_and_what(tmp_path: Path, bad: float) -> None:
    # 4 iterations per epoch: global iteration 6 is the 2nd of epoch 2
    runner = toy_runner(tmp_path, epochs=2, extra={6: bad})
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    message = str(err.value)
    assert 'iteration 6, epoch 2 (iteration 2/4 of the epoch)' in message
    assert f'loss_extra={bad}' in message and 'loss_fit' not in message
    assert 'skip_nonfinite=True' in message  # says how to opt in to skipping
    assert _steps(runner) == [5]  # the bad step never reached the optimiser
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert (tmp_path / 'epoch_1.pth').is_file() and not (tmp_path / 'epoch_2.pth').exists()


def test_skip_mode_skips_and_counts_the_step(tmp_path: Path) -> None:
    runner = toy_runner(tmp_path, epochs=2, extra={3: math.nan, 7: math.inf}, default_hooks=SKIP)
    before = {}

    def remember(module, args) -> None:
        before[module.calls + 1] = module.linear.weight.detach().clone()

    runner.model.register_forward_pre_hook(remember)
    runner.train()
    assert runner.message_hub.get_info('loss_guard_skips') == 2
    assert _steps(runner) == [8 - 2]
    # a skipped step leaves the weights as they were; a normal one moves them
    assert torch.equal(before[4], before[3]) and torch.equal(before[8], before[7])
    assert not torch.equal(before[5], before[4])
    assert (tmp_path / 'epoch_2.pth').is_file()
    # the skipped iterations' non-finite terms are not logged
    history = runner.message_hub.get_scalar('train/loss_extra').data[0]
    assert len(history) == 6 and all(math.isfinite(v) for v in history)


def test_skip_mode_stops_after_max_skips(tmp_path: Path) -> None:
    extra = {2: math.nan, 3: math.nan, 4: math.nan}
    runner = toy_runner(tmp_path, epochs=1, extra=extra, default_hooks=SKIP)
    with pytest.raises(
        FloatingPointError, match='3 steps with non-finite losses exceed max_skips=2'
    ) as err:
        runner.train()
    # already in skip mode: the advice is about max_skips, not about switching skipping on
    assert 'skip_nonfinite=True' not in str(err.value) and 'max_skips' in str(err.value)


def test_loss_guard_is_on_by_default_and_configurable(tmp_path: Path) -> None:
    guards = [h for h in toy_runner(tmp_path / 'a').hooks if isinstance(h, LossGuardHook)]
    assert len(guards) == 1 and guards[0].skip_nonfinite is False
    runner = toy_runner(tmp_path / 'b', default_hooks=SKIP)
    (guard,) = [h for h in runner.hooks if isinstance(h, LossGuardHook)]
    assert guard.skip_nonfinite is True and guard.max_skips == 2
    runner = toy_runner(tmp_path / 'c', default_hooks=dict(loss_guard=None))
    assert not [h for h in runner.hooks if isinstance(h, LossGuardHook)]
    with pytest.raises(ValueError, match='max_skips'):
        LossGuardHook(max_skips=-1)


def test_a_nan_model_is_never_written_as_a_checkpoint(tmp_path: Path) -> None:
    # Without the guard the NaN step poisons the weights; the epoch's checkpoint is refused.
    runner = toy_runner(
        tmp_path, epochs=2, extra={6: math.nan}, default_hooks=dict(loss_guard=None)
    )
    with pytest.raises(NonFiniteCheckpointError) as err:
        runner.train()
    assert str(tmp_path / 'epoch_2.pth') in str(err.value)
    assert 'linear.weight' in str(err.value) and '--resume' in str(err.value)
    assert not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert not [p for p in tmp_path.iterdir() if '.tmp.' in p.name]


def test_save_checkpoint_refuses_inf_buffers_too(tmp_path: Path) -> None:
    runner = toy_runner(tmp_path)
    runner.model.register_buffer('running_var', torch.tensor([1.0, math.inf]))
    with pytest.raises(NonFiniteCheckpointError, match='running_var'):
        runner.save_checkpoint(str(tmp_path), 'manual.pth', save_optimizer=False)
    assert not (tmp_path / 'manual.pth').exists()
