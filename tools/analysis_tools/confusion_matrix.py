"""Confusion matrix of test predictions (from tools/test.py --out) against the ground truth."""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp

import numpy as np
from mmengine.config import DictAction

from instseg.apis.results import (
    build_test_dataset,
    ground_truth,
    load_det_results,
    pairwise_iou,
    records_by_img_id,
)
from instseg.engine.config import load_config

EXAMPLES = """example:
  python tools/test.py CONFIG CHECKPOINT --out results.pkl
  python tools/analysis_tools/confusion_matrix.py CONFIG results.pkl confusion/ --score-thr 0.3

writes SAVE_DIR/confusion_matrix.png (rows: ground truth, columns: prediction, last row and
column: background; cells in percent of the row) and SAVE_DIR/confusion_matrix.json (counts).
A prediction above --score-thr matches the unmatched ground truth it overlaps most (IoU >=
--tp-iou-thr), highest scores first; unmatched predictions are background false positives and
unmatched ground truths are missed (predicted as background).
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``argv`` for calling from Python)."""
    parser = argparse.ArgumentParser(
        description='Confusion matrix of detections.',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='config of the tested model (its test dataset is used)')
    parser.add_argument('prediction_path', help='results .pkl from tools/test.py --out')
    parser.add_argument('save_dir', help='directory for confusion_matrix.png and .json')
    parser.add_argument('--score-thr', type=float, default=0.3, help='ignore lower scores')
    parser.add_argument('--tp-iou-thr', type=float, default=0.5, help='IoU of a match')
    parser.add_argument(
        '--iou-type', choices=['bbox', 'segm'], default='bbox', help='match boxes or masks'
    )
    parser.add_argument('--color-theme', default='plasma', help='matplotlib colormap')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return parser.parse_args(argv)


def image_confusion(
    pred: dict, gt: dict, num_classes: int, score_thr: float, iou_thr: float, iou_type: str
) -> np.ndarray:
    """[C + 1, C + 1] counts of one image (rows ground truth, columns prediction)."""
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    keep = np.flatnonzero(np.asarray(pred['scores']) >= score_thr)
    keep = keep[np.argsort(-np.asarray(pred['scores'])[keep], kind='stable')]
    labels = np.asarray(pred['labels'])[keep]
    if iou_type == 'segm':
        if pred.get('masks') is None or gt.get('masks') is None:
            raise ValueError('--iou-type segm needs masks in the results and the annotations')
        ious = pairwise_iou([pred['masks'][i] for i in keep], gt['masks'], 'segm')
    else:
        ious = pairwise_iou(np.asarray(pred['bboxes'])[keep], gt['bboxes'], 'bbox')
    matched = np.zeros(len(gt['labels']), dtype=bool)
    for d, label in enumerate(labels):
        candidates = np.where(matched, -1.0, ious[d]) if len(matched) else np.zeros(0)
        best = int(candidates.argmax()) if len(candidates) else -1
        if best >= 0 and candidates[best] >= iou_thr:
            matched[best] = True
            matrix[gt['labels'][best], label] += 1
        else:
            matrix[num_classes, label] += 1
    for gt_label in gt['labels'][~matched]:
        matrix[gt_label, num_classes] += 1
    return matrix


def figure_inches(num_classes: int) -> tuple[float, float]:
    """Figure size in inches (saved at 100 dpi) for ``num_classes`` classes plus background."""
    side = 0.6 * (num_classes + 1) + 3.0
    return side + 1.0, side


def plot_confusion_matrix(
    matrix: np.ndarray, labels: list[str], out_file: str, cmap: str = 'plasma'
) -> str:
    """Row-normalised matrix (percent) with the counts' percentages written in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    totals = matrix.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    fig = Figure(figsize=figure_inches(len(labels) - 1), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(percent, cmap=cmap, vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, label='% of the ground-truth row')
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha='right')
    ax.set_yticks(ticks, labels)
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    ax.set_title('confusion matrix')
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = 'white' if percent[i, j] < 50 else 'black'
            ax.text(j, i, f'{percent[i, j]:.0f}', ha='center', va='center', color=color, fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, format='png', dpi=100)
    return out_file


def main(argv: list[str] | None = None) -> np.ndarray:
    """Write the confusion matrix; returns the counts [C + 1, C + 1]."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    results = load_det_results(args.prediction_path)
    dataset = build_test_dataset(cfg)
    classes = list(dataset.metainfo['classes'])
    records = records_by_img_id(dataset, results, args.prediction_path)
    matrix = np.zeros((len(classes) + 1, len(classes) + 1), dtype=np.int64)
    for res, record in zip(results, records, strict=True):
        gt = ground_truth(record, with_masks=args.iou_type == 'segm')
        matrix += image_confusion(
            res['pred_instances'],
            gt,
            len(classes),
            args.score_thr,
            args.tp_iou_thr,
            args.iou_type,
        )
    labels = classes + ['background']
    os.makedirs(args.save_dir, exist_ok=True)
    png = plot_confusion_matrix(
        matrix, labels, osp.join(args.save_dir, 'confusion_matrix.png'), args.color_theme
    )
    with open(osp.join(args.save_dir, 'confusion_matrix.json'), 'w') as f:
        json.dump(dict(labels=labels, matrix=matrix.tolist(), rows='ground truth'), f, indent=1)
    width = max(len(name) for name in labels)
    print('rows: ground truth, columns: prediction (counts)')
    print(' ' * width + ' ' + ' '.join(f'{name[:6]:>6}' for name in labels))
    for name, row in zip(labels, matrix, strict=True):
        print(f'{name:>{width}} ' + ' '.join(f'{v:>6}' for v in row))
    print(f'written {png} and confusion_matrix.json')
    return matrix


if __name__ == '__main__':
    main()
