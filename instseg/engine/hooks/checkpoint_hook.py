"""mmengine's CheckpointHook, removing an old checkpoint only once its replacement is on disk."""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Iterator
from typing import Any

from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook

from instseg.registry import HOOKS


class _DeferredRemovals:
    """A file backend whose ``remove`` / ``rmtree`` wait, inside :meth:`deferred`, until the
    outermost block ends without an error; everything else goes to the wrapped backend."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._pending: list[tuple[str, str]] = []
        self._depth = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def remove(self, path: str) -> None:
        self._queue('remove', path)

    def rmtree(self, path: str) -> None:
        self._queue('rmtree', path)

    def _queue(self, method: str, path: str) -> None:
        if self._depth:
            self._pending.append((method, path))
        else:
            getattr(self._backend, method)(path)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException:
            # The new file is not (all) there: keep every old one.
            self._pending.clear()
            raise
        finally:
            self._depth -= 1
        if self._depth == 0:
            pending, self._pending = self._pending, []
            for method, path in pending:
                getattr(self._backend, method)(path)


# mmengine's hook hands its extra keyword arguments to ``Runner.save_checkpoint``, which takes
# none beyond those the hook passes itself: a misspelled argument only fails at the first save.
_ARGUMENTS = [
    name
    for name, p in inspect.signature(MMEngineCheckpointHook.__init__).parameters.items()
    if name != 'self' and p.kind is not p.VAR_KEYWORD
]


@HOOKS.register_module()
class CheckpointHook(MMEngineCheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with a safe order of writes and removals.

    mmengine deletes the checkpoint that ``max_keep_ckpts`` rotates out, and the previous
    ``save_best`` file, before it writes the new one, so a run killed during that write (or a save
    refused for a NaN model) is left without either. Here every removal waits until the new file
    has been renamed into place and ``last_checkpoint`` names it; when the save fails, nothing is
    removed. An argument mmengine's hook does not know (``max_keep_ckpt=1``) is a TypeError naming
    the closest one when the hook is built, not at the first save.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        unknown = [name for name in kwargs if name not in _ARGUMENTS]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, _ARGUMENTS, n=1)
                hints.append(f'{name!r}' + (f' (did you mean {close[0]!r}?)' if close else ''))
            raise TypeError(
                f'CheckpointHook (default_hooks.checkpoint) has no argument {", ".join(hints)}; '
                f'its arguments: {", ".join(_ARGUMENTS)}'
            )
        super().__init__(*args, **kwargs)

    def before_train(self, runner) -> None:
        """mmengine's set-up; then the file backend's removals become deferrable."""
        super().before_train(runner)
        self.file_backend = _DeferredRemovals(self.file_backend)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        with self._removals_after_save():
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_after_save():
            super()._save_best_checkpoint(runner, metrics)

    def _removals_after_save(self) -> contextlib.AbstractContextManager:
        backend = getattr(self, 'file_backend', None)
        if isinstance(backend, _DeferredRemovals):
            return backend.deferred()
        return contextlib.nullcontext()
