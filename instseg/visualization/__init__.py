"""Drawing predictions and annotations (``VISUALIZERS``), plotting training curves, and the
MLflow vis backend (``VISBACKENDS``)."""

from __future__ import annotations

from .curves import load_json_log, plot_panels, series_from_log
from .draw import class_palette, draw_instances, make_palette
from .local_visualizer import DetLocalVisualizer
from .vis_backends import MLflowVisBackend

__all__ = [
    'DetLocalVisualizer',
    'MLflowVisBackend',
    'class_palette',
    'draw_instances',
    'load_json_log',
    'make_palette',
    'plot_panels',
    'series_from_log',
]
