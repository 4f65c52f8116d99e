"""instseg's Runner: backend choice, default hooks, checkpoint retention, best-checkpoint rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from engine_toy import toy_runner

from instseg.engine.hooks import RNGStateHook
from instseg.engine.runner import dist_backend


@pytest.mark.parametrize(
    ('requested', 'cuda', 'expected'),
    [
        (None, True, 'nccl'),
        (None, False, 'gloo'),
        ('nccl', False, 'gloo'),  # mmdetection's default runtime on a CPU host
        ('nccl', True, 'nccl'),
        ('gloo', True, 'gloo'),
    ],
)
def test_backend_follows_the_host(monkeypatch, requested, cuda, expected) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    assert dist_backend(requested) == expected


def test_rng_state_hook_is_registered_by_default(tmp_path: Path) -> None:
    assert [h for h in toy_runner(tmp_path / 'a').hooks if isinstance(h, RNGStateHook)]
    runner = toy_runner(tmp_path / 'b', default_hooks=dict(rng_state=None))
    assert not [h for h in runner.hooks if isinstance(h, RNGStateHook)]


def test_max_keep_ckpts_deletes_the_oldest(tmp_path: Path) -> None:
    hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
    toy_runner(tmp_path, epochs=4, default_hooks=hooks).train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_3.pth', 'epoch_4.pth']


@pytest.mark.parametrize(('rule', 'best_epoch'), [('greater', 4), ('less', 2)])
def test_save_best_keeps_one_checkpoint_by_rule(tmp_path: Path, rule: str, best_epoch: int) -> None:
    scores = [0.5, 0.2, 0.3, 0.7]
    hooks = dict(
        checkpoint=dict(
            type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='toy/score', rule=rule
        )
    )
    runner = toy_runner(tmp_path, epochs=4, default_hooks=hooks, val_scores=scores)
    runner.train()
    best = sorted(p.name for p in tmp_path.glob('best_*.pth'))
    assert best == [f'best_toy_score_epoch_{best_epoch}.pth']
    assert runner.message_hub.get_info('best_score') == scores[best_epoch - 1]
    ckpt = torch.load(tmp_path / 'epoch_4.pth', weights_only=False)
    # the best-metric record travels in the checkpoint, so a resumed run keeps comparing with it
    assert ckpt['message_hub']['runtime_info']['best_score'] == scores[best_epoch - 1]
    assert sorted(p.name for p in tmp_path.glob('epoch_*.pth')) == ['epoch_4.pth']


def test_a_refused_save_removes_no_older_checkpoint(tmp_path: Path) -> None:
    # max_keep_ckpts=1 rotates epoch_1.pth out at epoch 2's save; the save is refused (NaN
    # weights), so epoch_1.pth must still be there for --resume, and last_checkpoint names it.
    import math

    from instseg.engine import NonFiniteCheckpointError

    hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
                 loss_guard=None)  # fmt: skip
    runner = toy_runner(tmp_path, epochs=2, extra={6: math.nan}, default_hooks=hooks)
    with pytest.raises(NonFiniteCheckpointError):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')


def test_a_misspelled_checkpoint_argument_fails_when_the_hook_is_built(tmp_path: Path) -> None:
    hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpt=1))
    with pytest.raises(TypeError, match="'max_keep_ckpt' \\(did you mean 'max_keep_ckpts'\\?\\)"):
        toy_runner(tmp_path, default_hooks=hooks)  # building the runner, before any iteration
    assert not list(tmp_path.glob('*.pth'))


def test_a_diverged_but_finite_model_is_written_with_a_warning(tmp_path: Path) -> None:
    runner = toy_runner(tmp_path)
    with torch.no_grad():
        runner.model.linear.weight.fill_(1e18)
    runner.save_checkpoint(str(tmp_path), 'diverged.pth', save_optimizer=False)
    assert (tmp_path / 'diverged.pth').is_file()  # finite: still written
    log = '\n'.join(p.read_text() for p in tmp_path.glob('*/*.log'))
    assert 'WARNING' in log and 'diverged: linear.weight' in log and 'linear.bias' not in log


def test_frozen_stages_on_random_weights_warn_what_to_set() -> None:
    from instseg.engine.runner import untrained_frozen_backbone
    from instseg.models.backbones import ResNet

    model = torch.nn.Module()
    model.backbone = ResNet(18, frozen_stages=1, norm_eval=True)
    warning = untrained_frozen_backbone(model, load_from=None)
    assert 'frozen_stages=1' in warning and 'norm_eval=True' in warning
    assert 'model.backbone.frozen_stages=-1 model.backbone.norm_eval=False' in warning
    assert untrained_frozen_backbone(model, load_from='epoch_3.pth') is None
    model.backbone = ResNet(18, frozen_stages=-1, norm_eval=False)
    assert untrained_frozen_backbone(model, load_from=None) is None
    pretrained = dict(type='Pretrained', checkpoint='r18.pth')
    model.backbone = ResNet(18, frozen_stages=1, norm_eval=True, init_cfg=pretrained)
    assert untrained_frozen_backbone(model, load_from=None) is None
