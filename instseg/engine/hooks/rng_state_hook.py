"""Random-number-generator states in checkpoints, so a resumed run draws what the uninterrupted
run would have drawn (data augmentation, RoI sampling, dataloader seeds)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from instseg.registry import HOOKS


def get_rng_states() -> dict[str, Any]:
    """States of python's ``random``, numpy's global generator and torch's CPU (and CUDA) ones."""
    states: dict[str, Any] = dict(
        python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state()
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_states` returned (CUDA states only on as many devices)."""
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    cuda = states.get('cuda')
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the RNG states in every checkpoint (key ``rng_states``), restore them when training
    resumes, and keep validation from consuming the training run's random stream.

    The epoch's checkpoint is written before that epoch's validation, whose dataloader draws
    from torch's generator; validation therefore runs on a copy of the states and the training
    stream continues as if it had not run. Without this, a resumed run would draw different
    random numbers from the uninterrupted one. mmengine itself only re-seeds on resume.

    Loading a checkpoint with ``load_from`` (not resuming) leaves the states alone. Only rank 0
    writes checkpoints, so every rank of a resumed distributed run continues rank 0's stream,
    except with ``randomness.diff_rank_seed`` where the other ranks keep their own seeds.

    The :class:`~instseg.engine.Runner` registers it by default as ``default_hooks.rng_state``.
    """

    # Before CheckpointHook (VERY_LOW) re-saves the epoch's checkpoint after validation.
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._loaded: dict | None = None
        self._outside_val: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_states'] = get_rng_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        """Restore the loaded states when the run resumes (a resumed run starts past iter 0)."""
        states, self._loaded = self._loaded, None
        if states is None or runner.iter == 0:
            return
        if get_rank() > 0 and runner.cfg.get('randomness', {}).get('diff_rank_seed', False):
            return
        set_rng_states(states)
        runner.logger.info(
            f'Restored the random number generator states of iteration {runner.iter}'
        )

    def before_val_epoch(self, runner) -> None:
        self._outside_val = get_rng_states()

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if self._outside_val is not None:
            set_rng_states(self._outside_val)
            self._outside_val = None
