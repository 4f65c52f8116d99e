"""Reading mmdetection 2.x configs: detection and translation into instseg's native keys."""

from __future__ import annotations

from .detect import find_2x_markers
from .printer import format_config
from .report import Config2xError, UpgradeWarning
from .translate import NATIVE_KEYS, translate_2x

__all__ = [
    'Config2xError',
    'NATIVE_KEYS',
    'UpgradeWarning',
    'find_2x_markers',
    'format_config',
    'translate_2x',
]
