"""Stop training on a NaN or Inf loss, or skip such steps, before they reach the weights."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import Tensor

from instseg.registry import HOOKS

# message_hub runtime-info key of the number of skipped steps (saved in checkpoints, so a resumed
# run keeps counting towards max_skips).
SKIPS_KEY = 'loss_guard_skips'


@HOOKS.register_module()
class LossGuardHook(Hook):
    """Check every training loss before the backward pass.

    A NaN or Inf loss term stops training with a ``FloatingPointError`` naming the iteration, the
    epoch and the offending terms, before the optimiser touches the weights. With
    ``skip_nonfinite=True`` the step is skipped instead (no backward, no optimiser step), logged
    and counted in the message hub (``loss_guard_skips``); more than ``max_skips`` skips in a run
    stop it. In distributed training the ranks agree (one small all-reduce per iteration), so all
    of them stop or skip together.

    The :class:`~instseg.engine.Runner` registers it by default as ``default_hooks.loss_guard``.

    Args:
        skip_nonfinite: skip such steps instead of stopping. Defaults to False.
        max_skips: most steps skipped before training stops anyway. Defaults to 10.
    """

    priority = 'VERY_HIGH'

    def __init__(self, skip_nonfinite: bool = False, max_skips: int = 10) -> None:
        if max_skips < 0:
            raise ValueError(f'LossGuardHook: max_skips must be >= 0, got {max_skips}')
        self.skip_nonfinite = skip_nonfinite
        self.max_skips = max_skips
        self._skipping = False
        self._patched: list[tuple[Any, str]] = []

    def before_train(self, runner) -> None:
        """Wrap the model's ``parse_losses`` and the optimiser wrappers' ``update_params``."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._patch(model, 'parse_losses', lambda parse: self._checked_parse(runner, parse))
        wrappers = runner.optim_wrapper
        for wrapper in wrappers.values() if isinstance(wrappers, OptimWrapperDict) else [wrappers]:
            self._patch(wrapper, 'update_params', self._guarded_update)

    def after_train(self, runner) -> None:
        """Remove the wrappers again."""
        for obj, name in self._patched:
            obj.__dict__.pop(name, None)
        self._patched.clear()

    def _patch(self, obj: Any, name: str, make: Callable[[Callable], Callable]) -> None:
        # An instance attribute shadows the method for this object only; after_train drops it.
        setattr(obj, name, make(getattr(obj, name)))
        self._patched.append((obj, name))

    def _checked_parse(self, runner, parse: Callable) -> Callable:
        def parse_losses(losses: dict) -> tuple[Tensor, OrderedDict]:
            self._skipping = False
            loss, log_vars = parse(losses)
            bad = [
                f'{name}={value.item() if value.numel() == 1 else value}'
                for name, value in log_vars.items()
                if name != 'loss' and 'loss' in name and not bool(torch.isfinite(value).all())
            ]
            if not bad and not bool(torch.isfinite(loss).all()):
                bad = [f'loss={loss.item()}']
            if not self._any_rank(bool(bad), loss.device):
                return loss, log_vars
            self._on_nonfinite(runner, bad)
            finite = OrderedDict(
                (k, v) for k, v in log_vars.items() if bool(torch.isfinite(v).all())
            )
            return loss, finite

        return parse_losses

    def _guarded_update(self, update_params: Callable) -> Callable:
        def guarded(loss: Tensor, *args, **kwargs) -> None:
            if self._skipping:
                return None
            return update_params(loss, *args, **kwargs)

        return guarded

    @staticmethod
    def _any_rank(flag: bool, device: torch.device) -> bool:
        if get_world_size() == 1:
            return flag
        value = torch.tensor(float(flag), device=device)
        all_reduce(value, op='sum')
        return bool(value.item() > 0)

    def _on_nonfinite(self, runner, bad: list[str]) -> None:
        loop = runner.train_loop
        where = f'iteration {runner.iter + 1}, epoch {runner.epoch + 1}'
        if getattr(loop, 'max_epochs', None) is not None and len(loop.dataloader):
            inner = runner.iter % len(loop.dataloader) + 1
            where += f' (iteration {inner}/{len(loop.dataloader)} of the epoch)'
        terms = ', '.join(bad) if bad else 'a loss term on another rank'
        message = f'Non-finite loss at {where}: {terms}.'
        if self.skip_nonfinite:
            skips = runner.message_hub.get_info(SKIPS_KEY, 0) + 1
            runner.message_hub.update_info(SKIPS_KEY, skips)
            if skips <= self.max_skips:
                runner.logger.warning(
                    f'{message} Step skipped (skip {skips} of at most {self.max_skips}).'
                )
                self._skipping = True
                return
            message += f' {skips} steps with non-finite losses exceed max_skips={self.max_skips}.'
        advice = (
            'or, to allow more skipped steps, raise default_hooks.loss_guard.max_skips.'
            if self.skip_nonfinite
            else "to skip such steps set default_hooks.loss_guard=dict(type='LossGuardHook', "
            'skip_nonfinite=True).'
        )
        raise FloatingPointError(
            f'{message} Training stopped before the weights were updated. Lower the learning '
            f'rate, clip gradients (optim_wrapper.clip_grad) or check the annotations; {advice}'
        )
