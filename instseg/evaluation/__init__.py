"""Evaluation metrics; importing this package registers them in ``instseg.registry.METRICS``."""

from __future__ import annotations

from instseg.evaluation.coco_metric import CocoMetric
from instseg.evaluation.dump_det_results import DumpDetResults

__all__ = ['CocoMetric', 'DumpDetResults']
