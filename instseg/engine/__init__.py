"""Runner glue that mmengine lacks: the Runner, hooks, optimizer helpers."""

from . import hooks, optim_constructors  # noqa: F401  (registers hooks, optim constructors)
from .amp_optim_wrapper import AmpOptimWrapper
from .runner import NonFiniteCheckpointError, Runner

__all__ = [
    'AmpOptimWrapper',
    'NonFiniteCheckpointError',
    'Runner',
]
