"""Running COCO evaluation and reading its numbers.

The summary numbers are read from ``COCOeval.eval`` here rather than from ``COCOeval.summarize``:
pycocotools computes its headline AP at ``maxDets=100`` whatever ``params.maxDets`` holds, so an
image with 1,900 nuclei could never score above ~0.05. Here AP uses the largest ``maxDets``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from instseg.evaluation.numpy_cocoeval import NumpyCOCOeval

# Area ranges in the order of pycocotools' default ``params.areaRngLbl``.
_AREA_INDEX = {'all': 0, 's': 1, 'm': 2, 'l': 3}
_AREA_LABEL = {'all': 'all', 's': 'small', 'm': 'medium', 'l': 'large'}


def coco_api() -> tuple[type, Callable[..., Any]]:
    """The COCO ground-truth class and a ``COCOeval``-like factory ``(gt, dt, iou_type)``.

    faster-coco-eval (same API, evaluation in C++) is used when it is installed, else pycocotools
    with numpy matching (:class:`NumpyCOCOeval`).
    """
    try:
        from faster_coco_eval.core import COCO, COCOeval_faster
    except ImportError:
        from pycocotools.coco import COCO

        return COCO, NumpyCOCOeval

    def make_eval(gt: Any, dt: Any, iou_type: str) -> Any:
        return COCOeval_faster(gt, dt, iou_type, print_function=print)

    return COCO, make_eval


def metric_item_names(proposal_nums: Sequence[int]) -> tuple[list[str], list[str]]:
    """Default items for bbox/segm (``mAP``, ...) and for proposals (``AR@100``, ...)."""
    largest = proposal_nums[-1]
    ap_items = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
    ar_items = [f'AR@{n}' for n in proposal_nums]
    ar_items += [f'AR_{area}@{largest}' for area in ('s', 'm', 'l')]
    return ap_items, ar_items


def run_coco_eval(
    make_eval: Callable[..., Any],
    coco_gt: Any,
    detections: list[dict],
    iou_type: str,
    img_ids: Sequence[int],
    cat_ids: Sequence[int],
    proposal_nums: Sequence[int],
    iou_thrs: Sequence[float] | None = None,
    use_cats: bool = True,
) -> Any:
    """Evaluate ``detections`` (COCO result dicts) and return the accumulated evaluator.

    Its ``eval['precision']`` is [T, R, K, A, M] and ``eval['recall']`` [T, K, A, M] for T IoU
    thresholds, R recall points, K categories (sorted ids), A area ranges, M = ``proposal_nums``.
    """
    # loadRes adds fields to the dicts it is given; hand it copies.
    detections = [dict(det) for det in detections]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        evaluator = make_eval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = list(img_ids)
        evaluator.params.catIds = list(cat_ids)
        evaluator.params.maxDets = list(proposal_nums)
        if iou_thrs is not None:
            evaluator.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        evaluator.params.useCats = int(use_cats)
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def _mean_valid(values: np.ndarray) -> float:
    # -1 marks settings without ground truth; pycocotools reports -1 when nothing is left.
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def _iou_index(iou_thrs: np.ndarray, iou: float | None) -> np.ndarray:
    if iou is None:
        return np.arange(len(iou_thrs))
    return np.flatnonzero(np.isclose(iou_thrs, iou))


def summary_stats(evaluator: Any) -> dict[str, float]:
    """The 12 COCO numbers keyed by item name (``mAP``, ``mAP_50``, ..., ``AR_l@1000``).

    AP and the area-range numbers use the largest ``maxDets``; ``AR@n`` uses ``maxDets=n``.
    """
    params = evaluator.params
    precision = evaluator.eval['precision']  # [T, R, K, A, M]
    recall = evaluator.eval['recall']  # [T, K, A, M]
    max_dets = list(params.maxDets)
    last = len(max_dets) - 1
    iou_thrs = np.asarray(params.iouThrs)

    def ap(iou: float | None = None, area: str = 'all') -> float:
        t = _iou_index(iou_thrs, iou)
        return _mean_valid(precision[t][:, :, :, _AREA_INDEX[area], last])

    def ar(area: str = 'all', m: int = last) -> float:
        return _mean_valid(recall[:, :, _AREA_INDEX[area], m])

    stats = {
        'mAP': ap(),
        'mAP_50': ap(0.5),
        'mAP_75': ap(0.75),
        'mAP_s': ap(area='s'),
        'mAP_m': ap(area='m'),
        'mAP_l': ap(area='l'),
    }
    for m, num in enumerate(max_dets):
        stats[f'AR@{num}'] = ar(m=m)
    for area in ('s', 'm', 'l'):
        stats[f'AR_{area}@{max_dets[last]}'] = ar(area)
    return stats


def summary_table(
    stats: dict[str, float], iou_thrs: Sequence[float], max_dets: Sequence[int]
) -> str:
    """pycocotools' 12-line summary, printed with the ``maxDets`` each number really used."""
    largest = max_dets[-1]
    span = f'{iou_thrs[0]:0.2f}:{iou_thrs[-1]:0.2f}'
    rows = [('AP', span, 'all', largest, 'mAP'), ('AP', '0.50', 'all', largest, 'mAP_50')]
    rows.append(('AP', '0.75', 'all', largest, 'mAP_75'))
    rows += [('AP', span, _AREA_LABEL[a], largest, f'mAP_{a}') for a in ('s', 'm', 'l')]
    rows += [('AR', span, 'all', n, f'AR@{n}') for n in max_dets]
    rows += [('AR', span, _AREA_LABEL[a], largest, f'AR_{a}@{largest}') for a in ('s', 'm', 'l')]
    lines = []
    for kind, iou, area, dets, key in rows:
        title = 'Average Precision  (AP)' if kind == 'AP' else 'Average Recall     (AR)'
        lines.append(
            f' {title} @[ IoU={iou:<9} | area={area:>6s} | maxDets={dets:>4d} ] = {stats[key]:0.3f}'
        )
    return '\n'.join(lines)


def classwise_ap(evaluator: Any) -> list[tuple[int, float, float, float]]:
    """Per category ``(cat_id, AP, AP50, AP75)`` over all areas at the largest ``maxDets``.

    Categories without ground truth get NaN, as in mmdetection.
    """
    params = evaluator.params
    precision = evaluator.eval['precision']  # [T, R, K, A, M]
    iou_thrs = np.asarray(params.iouThrs)
    rows = []
    for k, cat_id in enumerate(params.catIds):
        values = []
        for iou in (None, 0.5, 0.75):
            value = _mean_valid(precision[_iou_index(iou_thrs, iou)][:, :, k, 0, -1])
            values.append(float('nan') if value == -1.0 else value)
        rows.append((int(cat_id), *values))
    return rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with a rule under the header; floats shown with 4 decimals."""
    cells = [[f'{v:.4f}' if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(values: Sequence[str]) -> str:
        return (
            '| ' + ' | '.join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)) + ' |'
        )

    return '\n'.join([rule, line(header), rule, *(line(r) for r in cells), rule])
