"""Show the best and worst test images by per-image mAP (from tools/test.py --out)."""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.structures import InstanceData

from instseg.apis.results import (
    build_test_dataset,
    ground_truth,
    load_det_results,
    pairwise_iou,
    records_by_img_id,
)
from instseg.engine.config import load_config
from instseg.structures import DetDataSample
from instseg.visualization import DetLocalVisualizer
from instseg.visualization.draw import read_rgb

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)

EXAMPLES = """example:
  python tools/test.py CONFIG CHECKPOINT --out results.pkl
  python tools/analysis_tools/analyze_results.py CONFIG results.pkl show/ --topk 10

writes SHOW_DIR/good/ and SHOW_DIR/bad/ (the --topk best and worst images, ground truth left,
predictions above --show-score-thr right, named <rank>_<image>_<mAP>.png) and
SHOW_DIR/per_image_map.json. Per-image mAP is COCO-style AP over IoU 0.50:0.95 of masks
(--iou-type segm) or boxes, averaged over the classes present in the image's ground truth or
predictions; an image with neither scores 1.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Best and worst images by per-image mAP.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config of the tested model (its test dataset is used)')
    parser.add_argument('prediction_path', help='results .pkl from tools/test.py --out')
    parser.add_argument('show_dir', help='output directory')
    parser.add_argument('--topk', type=int, default=20, help='images in good/ and in bad/')
    parser.add_argument('--show-score-thr', type=float, default=0.3, help='draw scores above it')
    parser.add_argument(
        '--iou-type',
        choices=['segm', 'bbox'],
        help='rank by mask or box AP (default: segm when the results have masks)',
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error('--topk must be >= 1')
    return args


def average_precision(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """COCO's 101-point interpolated AP of detections sorted by descending score."""
    if num_gt == 0:
        return 0.0 if len(scores) else 1.0
    if len(scores) == 0:
        return 0.0
    tp = np.cumsum(is_tp)
    recall = tp / num_gt
    precision = tp / np.arange(1, len(tp) + 1)
    # Precision envelope: the best precision at any recall at least this high.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side='left')
    return float(np.where(idx < len(precision), precision[np.minimum(idx, len(tp) - 1)], 0).mean())


def image_map(pred: dict, gt: dict, iou_type: str) -> float:
    """Per-image mAP over IoU 0.50:0.95 and the classes in the ground truth or predictions."""
    scores = np.asarray(pred['scores'])
    labels, gt_labels = np.asarray(pred['labels']), np.asarray(gt['labels'])
    classes = sorted(set(labels.tolist()) | set(gt_labels.tolist()))
    if not classes:
        return 1.0
    aps = []
    for cls in classes:
        dets = np.flatnonzero(labels == cls)
        dets = dets[np.argsort(-scores[dets], kind='stable')]
        gts = np.flatnonzero(gt_labels == cls)
        if iou_type == 'segm':
            ious = pairwise_iou(
                [pred['masks'][i] for i in dets], [gt['masks'][j] for j in gts], 'segm'
            )
        else:
            ious = pairwise_iou(np.asarray(pred['bboxes'])[dets], gt['bboxes'][gts], 'bbox')
        for thr in IOU_THRESHOLDS:
            matched = np.zeros(len(gts), dtype=bool)
            is_tp = np.zeros(len(dets), dtype=bool)
            for d in range(len(dets)):
                if not len(gts):
                    break
                candidates = np.where(matched, -1.0, ious[d])
                best = int(candidates.argmax())
                if candidates[best] >= thr:
                    matched[best] = is_tp[d] = True
            aps.append(average_precision(scores[dets], is_tp, len(gts)))
    return float(np.mean(aps))


def _sample(record: dict, pred: dict, gt: dict) -> DetDataSample:
    """A data sample holding both the ground truth and the predictions, for drawing."""
    sample = DetDataSample(metainfo=dict(img_path=record['img_path']))
    gt_data = dict(bboxes=torch.as_tensor(gt['bboxes']), labels=torch.as_tensor(gt['labels']))
    if gt.get('masks') is not None:
        gt_data['masks'] = gt['masks']
    sample.gt_instances = InstanceData(**gt_data)
    pred_data = {k: torch.as_tensor(np.asarray(pred[k])) for k in ('bboxes', 'scores', 'labels')}
    if pred.get('masks') is not None:
        pred_data['masks'] = list(pred['masks'])
    sample.pred_instances = InstanceData(**pred_data)
    return sample


def main(argv: list[str] | None = None) -> list[dict]:
    """Rank images by mAP and draw the best and worst; returns the ranking."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    results = load_det_results(args.prediction_path)
    has_masks = all(res['pred_instances'].get('masks') is not None for res in results)
    iou_type = args.iou_type or ('segm' if has_masks else 'bbox')
    if iou_type == 'segm' and not has_masks:
        raise ValueError(f'{args.prediction_path} has no masks; use --iou-type bbox')
    dataset = build_test_dataset(cfg)
    records = records_by_img_id(dataset, results, args.prediction_path)
    scored = []
    for res, record in zip(results, records, strict=True):
        gt = ground_truth(record, with_masks=True)
        if iou_type == 'segm' and gt['masks'] is None:
            raise ValueError(
                f'image {record["img_id"]} has no mask annotations; use --iou-type bbox'
            )
        scored.append((image_map(res['pred_instances'], gt, iou_type), res, record, gt))
    scored.sort(key=lambda item: item[0], reverse=True)
    topk = min(args.topk, len(scored))
    visualizer = DetLocalVisualizer(name='analyze_results')
    visualizer.dataset_meta = dataset.metainfo
    for folder, chosen in (('good', scored[:topk]), ('bad', scored[::-1][:topk])):
        for rank, (value, res, record, gt) in enumerate(chosen, 1):
            stem = Path(record['img_path']).stem
            visualizer.add_datasample(
                stem,
                read_rgb(record['img_path']),
                _sample(record, res['pred_instances'], gt),
                pred_score_thr=args.show_score_thr,
                out_file=osp.join(args.show_dir, folder, f'{rank:03d}_{stem}_{value:.3f}.png'),
            )
    table = [
        dict(img_id=record['img_id'], img_path=record['img_path'], mAP=round(value, 4))
        for value, _, record, _ in scored
    ]
    os.makedirs(args.show_dir, exist_ok=True)
    with open(osp.join(args.show_dir, 'per_image_map.json'), 'w') as f:
        json.dump(dict(iou_type=iou_type, images=table), f, indent=1)
    print(f'per-image {iou_type} mAP: best {scored[0][0]:.3f}, worst {scored[-1][0]:.3f}, '
          f'mean {np.mean([s[0] for s in scored]):.3f} over {len(scored)} images')  # fmt: skip
    print(f'top {topk} best in {osp.join(args.show_dir, "good")}, worst in '
          f'{osp.join(args.show_dir, "bad")}')  # fmt: skip
    return table


if __name__ == '__main__':
    main()
