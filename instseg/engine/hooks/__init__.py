"""Training hooks that mmengine lacks (registered in ``instseg.registry.HOOKS``)."""

from __future__ import annotations

from .checkpoint_hook import CheckpointHook
from .curves_hook import TrainingCurvesHook
from .loss_guard_hook import LossGuardHook
from .rng_state_hook import RNGStateHook
from .visualization_hook import DetVisualizationHook

__all__: list[str] = [
    'CheckpointHook',
    'DetVisualizationHook',
    'LossGuardHook',
    'RNGStateHook',
    'TrainingCurvesHook',
]
