"""Evaluation metrics; importing this package registers them in ``instseg.registry.METRICS``."""

from __future__ import annotations

from instseg.evaluation.coco_metric import CocoMetric

__all__ = ['CocoMetric']
