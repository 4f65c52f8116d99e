"""COCO box, mask and proposal metrics for the mmengine evaluator."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.fileio import exists, get_local_path
from mmengine.logging import MMLogger, print_log
from mmengine.structures import BaseDataElement

from instseg.evaluation.coco_eval import (
    classwise_ap,
    coco_api,
    format_table,
    metric_item_names,
    run_coco_eval,
    summary_stats,
    summary_table,
)
from instseg.evaluation.coco_results import compact_prediction, dump_json_atomic, to_coco_results
from instseg.registry import METRICS

_METRICS = ('bbox', 'segm', 'proposal')


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO AP/AR of predicted boxes (``bbox``), masks (``segm``) and class-agnostic boxes
    (``proposal``), computed with pycocotools (or faster-coco-eval when installed).

    ``process`` takes data sample dicts with metainfo ``img_id``, ``ori_shape`` (h, w) and
    ``pred_instances``: ``bboxes`` Tensor[K, 4] (x1, y1, x2, y2 at the original size), ``scores``
    Tensor[K], ``labels`` Tensor[K] (0-based) and optionally ``masks`` (BoolTensor[K, H, W] at
    ``ori_shape`` or K COCO RLE dicts). Label ``i`` is COCO category ``dataset_meta['cat_ids'][i]``,
    else the category named ``dataset_meta['classes'][i]``, else the i-th category of ``ann_file``.

    ``compute_metrics`` returns ``{metric}_mAP``, ``{metric}_mAP_50``, ... (``AR@n`` ... for
    proposals), rounded to 4 decimals; AP is taken at ``max(proposal_nums)`` detections per image.

    Args:
        ann_file: COCO-format ground-truth JSON. Required unless ``format_only``.
        metric: one or more of ``'bbox'``, ``'segm'``, ``'proposal'``. Defaults to ``'bbox'``.
        classwise: also report and return per-class AP. Defaults to False.
        proposal_nums: COCO ``maxDets``, ascending. Defaults to (100, 300, 1000).
        iou_thrs: IoU thresholds. Defaults to None (0.50:0.05:0.95).
        metric_items: items to return per metric (``'mAP'``, ``'mAP_50'``, ``'AR@100'``, ...).
            Defaults to None (six AP items, or six AR items for proposals).
        format_only: only write the results to ``outfile_prefix``.{bbox,segm}.json and return {}.
        outfile_prefix: where to write the result files. Defaults to None (not written).
        sort_categories: order the annotation file's categories by id before mapping labels to
            them by position (only used when ``dataset_meta`` names no classes). Defaults to False.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: key prefix in logs. Defaults to None (``'coco'``).
        backend_args: mmengine file backend arguments for reading ``ann_file``.
    """

    default_prefix: str | None = 'coco'

    def __init__(
        self,
        ann_file: str | None = None,
        metric: str | Sequence[str] = 'bbox',
        classwise: bool = False,
        proposal_nums: Sequence[int] = (100, 300, 1000),
        iou_thrs: float | Sequence[float] | None = None,
        metric_items: Sequence[str] | None = None,
        format_only: bool = False,
        outfile_prefix: str | None = None,
        sort_categories: bool = False,
        collect_device: str = 'cpu',
        prefix: str | None = None,
        backend_args: dict | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.metrics = [metric] if isinstance(metric, str) else list(metric)
        for name in self.metrics:
            if name not in _METRICS:
                raise ValueError(f'CocoMetric: metric must be one of {_METRICS}, got {name!r}')
        if ann_file is None and not format_only:
            raise ValueError(
                'CocoMetric needs ann_file: the COCO-format annotation JSON of the evaluated split '
                "(e.g. ann_file='data/coco/annotations/instances_val2017.json'); it may only be "
                'left out with format_only=True'
            )
        if format_only and outfile_prefix is None:
            raise ValueError(
                'CocoMetric: format_only=True writes result files, so it needs outfile_prefix '
                "(e.g. outfile_prefix='work_dirs/results/coco')"
            )
        nums = [int(n) for n in proposal_nums]
        if not nums or nums[0] < 1 or any(b <= a for a, b in zip(nums, nums[1:], strict=False)):
            raise ValueError(
                'CocoMetric: proposal_nums must be positive and strictly ascending, '
                f'got {tuple(proposal_nums)}'
            )
        self.proposal_nums = tuple(nums)
        if iou_thrs is not None:
            iou_thrs = [float(iou_thrs)] if isinstance(iou_thrs, (int, float)) else list(iou_thrs)
            if not iou_thrs or not all(0.0 < t <= 1.0 for t in iou_thrs):
                raise ValueError(f'CocoMetric: iou_thrs must be in (0, 1], got {iou_thrs}')
        self.iou_thrs = iou_thrs
        self._ap_items, self._ar_items = metric_item_names(self.proposal_nums)
        if metric_items is not None:
            metric_items = [metric_items] if isinstance(metric_items, str) else list(metric_items)
            known = self._ap_items + self._ar_items
            for item in metric_items:
                if item not in known:
                    raise ValueError(
                        f'CocoMetric: unknown metric item {item!r}; known items are {known}'
                    )
        self.metric_items = metric_items
        self.ann_file = ann_file
        self.classwise = classwise
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.sort_categories = sort_categories
        self.backend_args = backend_args
        self._coco_gt: Any = None

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep a compact copy (boxes, scores, labels, RLE masks) of each sample's predictions."""
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            self.results.append(compact_prediction(sample))

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        """Evaluate the gathered predictions; returns e.g. ``{'bbox_mAP': 0.372, ...}``."""
        logger = MMLogger.get_current_instance()
        coco_gt = self._load_ground_truth() if self.ann_file is not None else None
        cat_ids, cat_names = self._category_mapping(coco_gt)
        bbox_results, segm_results = to_coco_results(results, cat_ids)
        if self.outfile_prefix is not None:
            self._write_results(bbox_results, segm_results, results, logger)
        if self.format_only:
            return {}
        img_ids = sorted({res['img_id'] for res in results})
        self._check_images(coco_gt, results)
        _, make_eval = coco_api()

        eval_results: dict[str, float] = {}
        for metric in self.metrics:
            detections = segm_results if metric == 'segm' else bbox_results
            if not detections:
                print_log(
                    f'CocoMetric: there are no {metric} predictions to evaluate (the model '
                    f'predicted nothing{", or no masks" if metric == "segm" else ""}); '
                    f'reporting 0.0 for {metric}',
                    logger=logger,
                    level=logging.WARNING,
                )
                eval_results.update(dict.fromkeys(self._result_keys(metric, cat_names), 0.0))
                continue
            evaluator = run_coco_eval(
                make_eval,
                coco_gt,
                detections,
                'segm' if metric == 'segm' else 'bbox',
                img_ids=img_ids,
                cat_ids=cat_ids,
                proposal_nums=self.proposal_nums,
                iou_thrs=self.iou_thrs,
                use_cats=metric != 'proposal',
            )
            eval_results.update(self._report(metric, evaluator, cat_names, logger))
        return eval_results

    def _items(self, metric: str) -> dict[str, str]:
        """Summary item (``mAP``, ``AR@100``, ...) -> returned key (``bbox_mAP``, ``AR@100``)."""
        if metric == 'proposal':
            return {item: item for item in self.metric_items or self._ar_items}
        return {item: f'{metric}_{item}' for item in self.metric_items or self._ap_items}

    def _result_keys(self, metric: str, cat_names: dict[int, str]) -> list[str]:
        keys = list(self._items(metric).values())
        if self.classwise and metric != 'proposal':
            keys += [f'{metric}_{cat_names[c]}_precision' for c in sorted(cat_names)]
        return keys

    def _report(
        self, metric: str, evaluator: Any, cat_names: dict[int, str], logger: MMLogger
    ) -> dict[str, float]:
        """Log the summary (and per-class) tables and return the rounded numbers."""
        stats = summary_stats(evaluator)
        table = summary_table(stats, list(evaluator.params.iouThrs), self.proposal_nums)
        print_log(f'Evaluating {metric}...\n{table}', logger=logger)
        results: dict[str, float] = {}
        if self.classwise and metric != 'proposal':
            rows = [(cat_names[c], ap, ap50, ap75) for c, ap, ap50, ap75 in classwise_ap(evaluator)]
            header = ('category', 'AP', 'AP50', 'AP75')
            print_log(f'Per-class {metric} AP:\n{format_table(header, rows)}', logger=logger)
            for name, ap, _, _ in rows:
                results[f'{metric}_{name}_precision'] = round(ap, 4)
        for item, key in self._items(metric).items():
            results[key] = round(stats[item], 4)
        return results

    def _load_ground_truth(self) -> Any:
        """Read ``ann_file`` at first use, so a dataset generated on first load exists by then."""
        if self._coco_gt is not None:
            return self._coco_gt
        if not exists(self.ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'CocoMetric: annotation file {self.ann_file!r} does not exist')
        coco_cls, _ = coco_api()
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    coco_gt = coco_cls(local_path)
            except (json.JSONDecodeError, AssertionError, KeyError, TypeError) as err:
                raise ValueError(
                    f'CocoMetric: {self.ann_file!r} is not a COCO annotation file: {err!r}'
                ) from err
        if self.sort_categories:
            coco_gt.dataset['categories'] = sorted(
                coco_gt.dataset['categories'], key=lambda cat: cat['id']
            )
            coco_gt.cats = {cat_id: coco_gt.cats[cat_id] for cat_id in sorted(coco_gt.cats)}
        self._coco_gt = coco_gt
        return coco_gt

    def _category_mapping(self, coco_gt: Any) -> tuple[list[int], dict[int, str]]:
        """COCO category id of each label, and the class name of each id (for tables)."""
        meta = self.dataset_meta or {}
        classes = list(meta.get('classes') or [])
        if meta.get('cat_ids') is not None:
            cat_ids = [int(c) for c in meta['cat_ids']]
            if classes and len(classes) != len(cat_ids):
                raise ValueError(
                    f'CocoMetric: dataset_meta has {len(classes)} classes but '
                    f'{len(cat_ids)} cat_ids; they must correspond one to one'
                )
            if coco_gt is not None:
                missing = [c for c in cat_ids if c not in coco_gt.cats]
                if missing:
                    raise ValueError(
                        f'CocoMetric: dataset_meta cat_ids {missing} are not categories of '
                        f'{self.ann_file!r} (it has {sorted(coco_gt.cats)})'
                    )
            if classes:
                names = dict(zip(cat_ids, classes, strict=True))
            elif coco_gt is not None:
                names = {c: coco_gt.cats[c]['name'] for c in cat_ids}
            else:
                names = {c: str(c) for c in cat_ids}
            return cat_ids, names
        if coco_gt is None:
            raise ValueError(
                'CocoMetric: without ann_file, the dataset metainfo must provide "cat_ids" to map '
                'predicted labels to COCO category ids'
            )
        categories = coco_gt.dataset['categories']
        if not classes:
            cat_ids = [int(cat['id']) for cat in categories]
            return cat_ids, {cat['id']: cat['name'] for cat in categories}
        by_name: dict[str, list[int]] = {}
        for cat in categories:
            by_name.setdefault(cat['name'], []).append(int(cat['id']))
        missing = [name for name in classes if name not in by_name]
        if missing:
            raise ValueError(
                f'CocoMetric: classes {missing} of the dataset are not categories of '
                f'{self.ann_file!r} (it has {sorted(by_name)})'
            )
        ambiguous = [name for name in classes if len(by_name[name]) > 1]
        if ambiguous:
            raise ValueError(
                f'CocoMetric: categories {ambiguous} appear more than once in {self.ann_file!r}; '
                'give the dataset metainfo "cat_ids" to say which id each class is'
            )
        cat_ids = [by_name[name][0] for name in classes]
        return cat_ids, dict(zip(cat_ids, classes, strict=True))

    def _check_images(self, coco_gt: Any, results: list[dict]) -> None:
        """Fail with the image id when a prediction does not fit the annotation file."""
        unknown = sorted({res['img_id'] for res in results} - set(coco_gt.imgs))
        if unknown:
            raise ValueError(
                f'CocoMetric: predictions for image ids {unknown[:5]} which are not in '
                f'{self.ann_file!r}'
            )
        for res in results:
            if not res['masks']:
                continue
            img = coco_gt.imgs[res['img_id']]
            size = tuple(res['masks'][0]['size'])
            expected = (img.get('height'), img.get('width'))
            if None not in expected and size != expected:
                raise ValueError(
                    f'CocoMetric: masks of image {res["img_id"]} have size {size}, but '
                    f'{self.ann_file!r} says the image is {expected} (h, w)'
                )

    def _write_results(
        self, bbox_results: list, segm_results: list, results: list[dict], logger: MMLogger
    ) -> None:
        files = {'bbox': bbox_results}
        if any(res['masks'] is not None for res in results):
            files['segm'] = segm_results
        for kind, records in files.items():
            path = f'{self.outfile_prefix}.{kind}.json'
            dump_json_atomic(records, path)
            print_log(f'CocoMetric: wrote {len(records)} {kind} results to {path}', logger=logger)
