"""CocoMetric against plain pycocotools on the same many-detection results: time and AP.

Detections are made from the ground truth of ANN_FILE: each instance once with its box shifted by up
to 2 px, then copies of random instances as false positives, until every image has --per-image
detections, all with random scores. Both evaluations use maxDets (100, 300, 1000); their AP at
1000 detections must agree to 1e-4.

example (the figure in the README):
  python tools/analysis_tools/benchmark.py coco-eval \\
      ../shared/data/nuclei/annotations/instances_val.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from instseg.evaluation import CocoMetric
from instseg.evaluation.coco_results import to_coco_results

from .common import format_table

MAX_DETS = (100, 300, 1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument('ann_file', help='COCO instances JSON with masks')
    parser.add_argument('--per-image', type=int, default=1000, help='detections per image')
    parser.add_argument('--seed', type=int, default=0)


def make_results(coco: COCO, per_image: int, seed: int) -> list[dict]:
    """CocoMetric's per-image predictions (xyxy boxes, RLE masks), made from the ground truth."""
    rng = np.random.default_rng(seed)
    results = []
    for img_id in sorted(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False))
        info = coco.imgs[img_id]
        if not anns:
            continue
        picks = np.concatenate(
            [np.arange(len(anns)), rng.integers(0, len(anns), max(per_image - len(anns), 0))]
        )[:per_image]
        boxes = np.array([anns[i]['bbox'] for i in picks], dtype=np.float32)
        boxes[:, 2:] += boxes[:, :2]
        boxes += rng.uniform(-2, 2, boxes.shape).astype(np.float32)
        results.append(
            dict(
                img_id=img_id,
                ori_shape=(info['height'], info['width']),
                bboxes=boxes,
                scores=rng.uniform(0.05, 1.0, len(picks)).astype(np.float32),
                labels=np.zeros(len(picks), dtype=np.int64),
                masks=[coco.annToRLE(anns[i]) for i in picks],
            )
        )
    return results


def pycocotools_ap(coco: COCO, detections: list[dict], iou_type: str) -> tuple[float, float]:
    """(seconds, AP at the largest maxDets) of plain pycocotools on COCO result dicts."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco.loadRes(detections)
        evaluator = COCOeval(coco, dt, iou_type)
        evaluator.params.maxDets = list(MAX_DETS)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    seconds = time.perf_counter() - start
    precision = evaluator.eval['precision'][:, :, :, 0, -1]  # area 'all', the largest maxDets
    return seconds, float(np.mean(precision[precision > -1]))


def run(args: argparse.Namespace) -> dict:
    """Both evaluations of the same detections; prints and returns time and AP of each."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(args.ann_file)
    results = make_results(coco, args.per_image, args.seed)
    cat_ids = sorted(coco.getCatIds())
    bbox_dets, segm_dets = to_coco_results(results, cat_ids)
    report: dict = dict(images=len(results), detections=len(bbox_dets))
    plain = {}
    for iou_type, dets in (('bbox', bbox_dets), ('segm', segm_dets)):
        plain[iou_type] = pycocotools_ap(coco, dets, iou_type)
    metric = CocoMetric(ann_file=args.ann_file, metric=['bbox', 'segm'], proposal_nums=MAX_DETS)
    metric.dataset_meta = dict(classes=tuple(c['name'] for c in coco.loadCats(cat_ids)))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        ours = metric.compute_metrics(results)
    report['cocometric_s'] = time.perf_counter() - start
    report['pycocotools_s'] = sum(seconds for seconds, _ in plain.values())
    report['ratio'] = report['cocometric_s'] / report['pycocotools_s']
    for iou_type, (_, ap) in plain.items():
        report[f'{iou_type}_mAP_pycocotools'] = round(ap, 4)
        report[f'{iou_type}_mAP_cocometric'] = ours[f'{iou_type}_mAP']
        if abs(ours[f'{iou_type}_mAP'] - round(ap, 4)) > 1e-4:
            raise AssertionError(
                f'{iou_type} AP differs: CocoMetric {ours[f"{iou_type}_mAP"]}, pycocotools {ap:.4f}'
            )
    print(f'COCO evaluation of {report["images"]} images, {report["detections"]} detections, '
          f'bbox + segm, maxDets {MAX_DETS}')  # fmt: skip
    print(format_table(
        ['evaluator', 'seconds', 'bbox mAP', 'segm mAP'],
        [['CocoMetric', report['cocometric_s'], report['bbox_mAP_cocometric'],
          report['segm_mAP_cocometric']],
         ['pycocotools', report['pycocotools_s'], report['bbox_mAP_pycocotools'],
          report['segm_mAP_pycocotools']]],
    ))  # fmt: skip
    print(f'CocoMetric / pycocotools time: {report["ratio"]:.2f}; AP identical')
    return report
