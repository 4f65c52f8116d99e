"""Drawing predictions and annotations (``VISUALIZERS``) and plotting training curves."""

from __future__ import annotations

from .curves import load_json_log, plot_panels, series_from_log
from .draw import class_palette, draw_instances, make_palette
from .local_visualizer import DetLocalVisualizer

__all__ = [
    'DetLocalVisualizer',
    'class_palette',
    'draw_instances',
    'load_json_log',
    'make_palette',
    'plot_panels',
    'series_from_log',
]
