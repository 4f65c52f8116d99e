"""Dumping test predictions to a pickle file (``tools/test.py --out results.pkl``)."""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import DumpResults
from mmengine.structures import BaseDataElement

from instseg.evaluation.coco_results import encode_mask_results
from instseg.registry import METRICS

# Ground truth is left out: the pickle holds what the model said, the dataset holds the rest.
_DROPPED = ('gt_instances', 'ignored_instances', 'gt_sem_seg')


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


@METRICS.register_module()
class DumpDetResults(DumpResults):
    """Write every test image's predictions to ``out_file_path`` (``.pkl``), as mmdetection.

    The file holds a list with one dict per image: its metainfo (``img_id``, ``img_path``,
    ``ori_shape``, ``img_shape``, ``scale_factor``, ...) and ``pred_instances`` with ``bboxes``
    float32 [K, 4] (x1, y1, x2, y2 at the original size), ``scores`` [K], ``labels`` int64 [K]
    as numpy arrays and ``masks`` as K COCO RLE dicts (``counts`` bytes). Read it with
    ``mmengine.load``; ``tools/analysis_tools/confusion_matrix.py`` and ``analyze_results.py``
    take it as input.

    Args:
        out_file_path: the ``.pkl`` (or ``.pickle``) file; its directory is created.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        collect_dir: directory for gathering on cpu. Defaults to None.
    """

    def __init__(
        self, out_file_path: str, collect_device: str = 'cpu', collect_dir: str | None = None
    ) -> None:
        if not str(out_file_path).endswith(('.pkl', '.pickle')):
            raise ValueError(f'DumpDetResults: the output must be a .pkl file, got {out_file_path}')
        super().__init__(
            out_file_path=str(out_file_path), collect_device=collect_device, collect_dir=collect_dir
        )

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep each sample's metainfo and predictions (numpy arrays, RLE masks)."""
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            record = {k: v for k, v in sample.items() if k not in _DROPPED}
            pred = record.get('pred_instances')
            if pred is not None:
                pred = dict(pred.to_dict() if isinstance(pred, BaseDataElement) else pred)
                if pred.get('masks') is not None:
                    pred['masks'] = encode_mask_results(pred['masks'])
                record['pred_instances'] = {k: _numpy(v) for k, v in pred.items()}
            self.results.append({k: _numpy(v) for k, v in record.items()})

    def compute_metrics(self, results: list) -> dict:
        """Write the pickle; no metrics."""
        os.makedirs(osp.dirname(osp.abspath(self.out_file_path)), exist_ok=True)
        return super().compute_metrics(results)
