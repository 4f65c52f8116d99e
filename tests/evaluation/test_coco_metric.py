"""CocoMetric on hand-made COCO files whose AP values can be worked out by hand.

The ground truth holds rectangles only, so a prediction shifted right by a fifth of its width
overlaps its object with IoU (w - w/5) / (w + w/5) = 2/3 both as a box and as a mask: it matches at
the IoU thresholds 0.50-0.65 (4 of 10) and AP is 0.4.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import types
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData
from pycocotools.coco import COCO

from instseg.evaluation import CocoMetric
from instseg.registry import METRICS
from instseg.structures import PredictedMasks

# Categories listed out of id order on purpose: mapping must not depend on file order.
CATEGORIES = [{'id': 7, 'name': 'cat'}, {'id': 3, 'name': 'dog'}]
META = {'classes': ('dog', 'cat'), 'cat_ids': [3, 7]}
IMAGES = {1: (100, 100), 2: (80, 120), 5: (64, 64)}  # id -> (h, w)
# (ann id, image id, category id, box xywh, encoding); all areas < 96**2, so mAP_l is -1.
OBJECTS = [
    (1, 1, 3, (10, 10, 20, 20), 'polygon'),
    (2, 1, 7, (50, 40, 30, 30), 'rle'),
    (3, 2, 3, (20, 10, 40, 30), 'polygon'),
    (4, 2, 7, (70, 45, 40, 30), 'crowd'),
    (5, 5, 7, (2, 20, 40, 30), 'polygon'),
]
AP_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def _rect_mask(img_id: int, box: tuple) -> np.ndarray:
    mask = np.zeros(IMAGES[img_id], dtype=np.uint8)
    x, y, w, h = box
    mask[y : y + h, x : x + w] = 1
    return mask


def _uncompressed_rle(mask: np.ndarray) -> dict:
    # Column-major run lengths, starting with a (possibly empty) run of zeros.
    flat = mask.flatten(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {'size': list(mask.shape), 'counts': counts}


def _write_gt(path: Path) -> str:
    annotations = []
    for ann_id, img_id, cat_id, box, kind in OBJECTS:
        x, y, w, h = box
        mask = _rect_mask(img_id, box)
        if kind == 'polygon':
            segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        elif kind == 'rle':
            rle = mask_util.encode(np.asfortranarray(mask))
            segmentation = {'size': rle['size'], 'counts': rle['counts'].decode()}
        else:
            segmentation = _uncompressed_rle(mask)
        annotations.append(
            dict(
                id=ann_id,
                image_id=img_id,
                category_id=cat_id,
                bbox=list(box),
                area=w * h,
                segmentation=segmentation,
                iscrowd=int(kind == 'crowd'),
            )
        )
    images = [dict(id=i, width=w, height=h, file_name=f'{i}.png') for i, (h, w) in IMAGES.items()]
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=CATEGORIES)))
    return str(path)


@pytest.fixture
def gt_file(tmp_path: Path) -> str:
    return _write_gt(tmp_path / 'gt.json')


def _predictions(shifts: dict | None = None, scores: dict | None = None, swap=False, rle=False):
    """Predictions equal to the non-crowd ground truth, each moved right by ``shifts[ann_id]``."""
    samples = []
    for img_id, shape in IMAGES.items():
        boxes, labels, conf, masks = [], [], [], []
        for ann_id, obj_img, cat_id, (x, y, w, h), kind in OBJECTS:
            if obj_img != img_id or kind == 'crowd':
                continue
            dx = (shifts or {}).get(ann_id, 0)
            boxes.append([x + dx, y, x + w + dx, y + h])
            label = META['cat_ids'].index(cat_id)
            labels.append(1 - label if swap else label)
            conf.append((scores or {}).get(ann_id, 1.0))
            masks.append(np.roll(_rect_mask(img_id, (x, y, w, h)), dx, axis=1))
        pred = dict(
            bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor(conf),
            labels=torch.tensor(labels, dtype=torch.long),
        )
        if rle:
            pred['masks'] = [mask_util.encode(np.asfortranarray(m)) for m in masks]
        else:
            pred['masks'] = torch.from_numpy(np.stack(masks)).bool()
        samples.append(dict(img_id=img_id, ori_shape=shape, pred_instances=pred))
    return samples


def _evaluate(metric: CocoMetric, samples: list, meta: dict | None = META) -> dict:
    metric.dataset_meta = meta
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


@pytest.fixture
def log_records():
    """Records logged through mmengine's current logger during the test."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_perfect_predictions_score_one(gt_file):
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), _predictions())
    for metric in ('bbox', 'segm'):
        got = [results[f'{metric}_{key}'] for key in AP_KEYS]
        assert got == [1.0, 1.0, 1.0, 1.0, 1.0, -1.0]
    assert len(results) == 12


def test_shifted_predictions_match_below_iou_two_thirds(gt_file):
    shifts = {1: 4, 2: 6, 3: 8, 5: 8}  # a fifth of each width: IoU 2/3
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), _predictions(shifts))
    for metric in ('bbox', 'segm'):
        assert results[f'{metric}_mAP'] == 0.4
        assert results[f'{metric}_mAP_50'] == 1.0
        assert results[f'{metric}_mAP_75'] == 0.0


def test_wrong_labels_score_zero(gt_file):
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), _predictions(swap=True))
    assert results['bbox_mAP'] == results['segm_mAP'] == results['segm_mAP_50'] == 0.0


def test_detection_on_crowd_region_is_not_a_false_positive(gt_file):
    samples = _predictions()
    pred = samples[1]['pred_instances']  # image 2 holds the crowd region (70, 45, 40, 30)
    pred['bboxes'] = torch.cat([pred['bboxes'], torch.tensor([[70.0, 45.0, 110.0, 75.0]])])
    pred['scores'] = torch.cat([pred['scores'], torch.tensor([0.99])])
    pred['labels'] = torch.cat([pred['labels'], torch.tensor([1])])
    crowd = torch.from_numpy(_rect_mask(2, (70, 45, 40, 30))).bool()[None]
    pred['masks'] = torch.cat([pred['masks'], crowd])
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), samples)
    assert results['bbox_mAP'] == results['segm_mAP'] == 1.0


def test_classwise_ap_and_ranking(gt_file):
    # dog: object 1 at IoU 0.818 (score 0.9), object 3 at IoU 2/3 (score 0.8). At IoU 0.70-0.80
    # only the first matches: recall 0.5 at precision 1 -> 51 of 101 recall points.
    shifts = {1: 2, 2: 6, 3: 8, 5: 8}
    samples = _predictions(shifts, scores={1: 0.9, 3: 0.8})
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm'], classwise=True), samples)
    dog = (4 + 3 * 51 / 101) / 10
    for metric in ('bbox', 'segm'):
        assert results[f'{metric}_dog_precision'] == round(dog, 4) == 0.5515
        assert results[f'{metric}_cat_precision'] == 0.4
        assert results[f'{metric}_mAP'] == round((dog + 0.4) / 2, 4) == 0.4757


def test_masks_as_tensors_rle_and_containers_agree(gt_file):
    from instseg.structures.masks import BitmapMasks

    shifts = {1: 2, 2: 6, 3: 8, 5: 0}
    from_tensors = _evaluate(CocoMetric(gt_file, metric='segm'), _predictions(shifts))
    from_rle = _evaluate(CocoMetric(gt_file, metric='segm'), _predictions(shifts, rle=True))
    assert from_tensors == from_rle
    assert 0.0 < from_rle['segm_mAP'] < 1.0
    samples = _predictions(shifts)
    for sample in samples:
        masks = sample['pred_instances']['masks'].numpy().astype(np.uint8)
        sample['pred_instances']['masks'] = BitmapMasks(masks, *sample['ori_shape'])
    assert _evaluate(CocoMetric(gt_file, metric='segm'), samples) == from_tensors
    # the mask head's compact default
    samples = _predictions(shifts)
    for sample in samples:
        sample['pred_instances']['masks'] = PredictedMasks.from_dense(
            sample['pred_instances']['masks']
        )
    assert _evaluate(CocoMetric(gt_file, metric='segm'), samples) == from_tensors


def test_metric_items_and_iou_thrs(gt_file):
    shifts = {1: 4, 2: 6, 3: 8, 5: 8}  # IoU 2/3: matched at 0.5 and 0.6, not at 0.7
    metric = CocoMetric(gt_file, iou_thrs=[0.5, 0.6, 0.7], metric_items=['mAP', 'mAP_75', 'AR@100'])
    results = _evaluate(metric, _predictions(shifts))
    assert results == {'bbox_mAP': 0.6667, 'bbox_mAP_75': -1.0, 'bbox_AR@100': 0.6667}
    with pytest.raises(ValueError, match="'mAP_90'"):
        CocoMetric(gt_file, metric_items=['mAP_90'])


def test_outfile_prefix_writes_results_and_still_evaluates(gt_file, tmp_path):
    metric = CocoMetric(gt_file, metric='segm', outfile_prefix=str(tmp_path / 'res'))
    assert _evaluate(metric, _predictions())['segm_mAP'] == 1.0
    assert len(COCO(gt_file).loadRes(str(tmp_path / 'res.segm.json')).anns) == 4


def test_segm_without_masks_warns_and_scores_zero(gt_file, log_records):
    samples = _predictions()
    for sample in samples:
        del sample['pred_instances']['masks']
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), samples)
    assert results['bbox_mAP'] == 1.0 and results['segm_mAP'] == 0.0
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'no segm predictions' in warnings[0]


def test_cat_ids_and_class_names_map_labels_alike(gt_file):
    by_ids = _evaluate(CocoMetric(gt_file), _predictions({1: 2}), META)
    by_names = _evaluate(CocoMetric(gt_file), _predictions({1: 2}), {'classes': ('dog', 'cat')})
    assert by_ids == by_names
    assert 0.0 < by_ids['bbox_mAP'] < 1.0
    # Without metainfo labels follow the file's categories: [7, 3] as listed, [3, 7] sorted.
    assert _evaluate(CocoMetric(gt_file), _predictions(), None)['bbox_mAP'] == 0.0
    sorted_cats = CocoMetric(gt_file, sort_categories=True)
    assert _evaluate(sorted_cats, _predictions(), None)['bbox_mAP'] == 1.0


def test_class_missing_from_annotation_file_is_named(gt_file):
    metric = CocoMetric(gt_file)
    with pytest.raises(ValueError, match="'bird'"):
        _evaluate(metric, _predictions(), {'classes': ('dog', 'bird')})


def _grid_gt(path: Path, num: int = 150) -> tuple[str, list[dict]]:
    """``num`` 8x8 boxes on a 10 px grid in one 150x100 image, one category."""
    boxes = [(10 * (i % 15), 10 * (i // 15), 8, 8) for i in range(num)]
    anns = [
        dict(id=i + 1, image_id=1, category_id=1, bbox=list(b), area=64, iscrowd=0,
             segmentation=[[b[0], b[1], b[0] + 8, b[1], b[0] + 8, b[1] + 8, b[0], b[1] + 8]])
        for i, b in enumerate(boxes)
    ]  # fmt: skip
    gt = dict(
        images=[dict(id=1, width=150, height=100, file_name='grid.png')],
        annotations=anns,
        categories=[dict(id=1, name='nucleus')],
    )
    path.write_text(json.dumps(gt))
    xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32)
    pred = dict(bboxes=xyxy, scores=torch.ones(num), labels=torch.zeros(num, dtype=torch.long))
    return str(path), [dict(img_id=1, ori_shape=(100, 150), pred_instances=pred)]


def test_max_dets_cap_limits_ap_of_crowded_images(tmp_path):
    ann_file, samples = _grid_gt(tmp_path / 'grid.json')
    meta = {'classes': ('nucleus',)}
    uncapped = _evaluate(CocoMetric(ann_file, proposal_nums=(100, 300, 1000)), samples, meta)
    assert uncapped['bbox_mAP'] == 1.0
    # Only 100 of 150 objects can be found: precision 1 up to recall 2/3, i.e. 67 of 101 points.
    capped = _evaluate(CocoMetric(ann_file, proposal_nums=(10, 50, 100)), samples, meta)
    assert capped['bbox_mAP'] == round(67 / 101, 4) == 0.6634


def test_proposal_recall_named_from_proposal_nums(tmp_path):
    ann_file, samples = _grid_gt(tmp_path / 'grid.json')
    metric = CocoMetric(ann_file, metric='proposal', proposal_nums=(10, 50, 100))
    results = _evaluate(metric, samples, {'classes': ('nucleus',)})
    assert results == {
        'AR@10': round(10 / 150, 4),
        'AR@50': round(50 / 150, 4),
        'AR@100': round(100 / 150, 4),
        'AR_s@100': round(100 / 150, 4),
        'AR_m@100': -1.0,
        'AR_l@100': -1.0,
    }


def test_format_only_writes_files_cocoapi_loads(gt_file, tmp_path):
    prefix = str(tmp_path / 'out' / 'results')
    metric = CocoMetric(None, metric=['bbox', 'segm'], format_only=True, outfile_prefix=prefix)
    assert _evaluate(metric, _predictions({1: 2})) == {}
    gt = COCO(gt_file)
    boxes = json.loads(Path(f'{prefix}.bbox.json').read_text())
    assert boxes[0] == dict(image_id=1, category_id=3, bbox=[12.0, 10.0, 20.0, 20.0], score=1.0)
    assert len(gt.loadRes(f'{prefix}.bbox.json').anns) == 4
    segm = gt.loadRes(f'{prefix}.segm.json')
    assert segm.anns[1]['area'] == 400
    assert sorted(os.listdir(tmp_path / 'out')) == ['results.bbox.json', 'results.segm.json']


def test_ground_truth_is_read_lazily_and_missing_file_is_named(tmp_path):
    path = tmp_path / 'late.json'
    metric = CocoMetric(str(path))  # the file does not exist yet: fine until evaluation
    with pytest.raises(FileNotFoundError, match='late.json'):
        _evaluate(metric, _predictions())
    _write_gt(path)
    metric.results.clear()
    assert _evaluate(metric, _predictions())['bbox_mAP'] == 1.0


def test_ann_file_is_required():
    with pytest.raises(ValueError, match='needs ann_file'):
        CocoMetric()
    with pytest.raises(ValueError, match='outfile_prefix'):
        CocoMetric(format_only=True)
    with pytest.raises(ValueError, match="'keypoints'"):
        CocoMetric('gt.json', metric='keypoints')
    with pytest.raises(ValueError, match='strictly ascending'):
        CocoMetric('gt.json', proposal_nums=(100, 10, 1000))


def test_empty_predictions_give_zero_and_a_warning(gt_file, log_records):
    samples = _predictions()
    for sample in samples:
        sample['pred_instances'] = dict(
            bboxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long)
        )
    results = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm'], classwise=True), samples)
    per_class = [f'{m}_{name}_precision' for m in ('bbox', 'segm') for name in ('dog', 'cat')]
    assert results == dict.fromkeys(
        [f'{m}_{k}' for m in ('bbox', 'segm') for k in AP_KEYS], 0.0
    ) | dict.fromkeys(per_class, 0.0)
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and 'no bbox predictions' in warnings[0]


def test_bad_predictions_are_named(gt_file):
    samples = _predictions()
    samples[0]['pred_instances']['labels'][0] = 5
    with pytest.raises(ValueError, match='image 1 has predicted label 5'):
        _evaluate(CocoMetric(gt_file), samples)
    samples = _predictions()
    samples[2]['img_id'] = 99
    with pytest.raises(ValueError, match=r'image ids \[99\]'):
        _evaluate(CocoMetric(gt_file), samples)
    samples = _predictions()
    samples[0]['ori_shape'] = (50, 50)
    with pytest.raises(ValueError, match='image 1 has a mask of size'):
        _evaluate(CocoMetric(gt_file, metric='segm'), samples)


def test_evaluator_with_det_data_samples_prefixes_keys(gt_file):
    from instseg.structures.det_data_sample import DetDataSample

    metric = METRICS.build(dict(type='CocoMetric', ann_file=gt_file, metric=['bbox', 'segm']))
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = META
    data_samples = []
    for sample in _predictions():
        data_sample = DetDataSample(
            metainfo=dict(img_id=sample['img_id'], ori_shape=sample['ori_shape'])
        )
        data_sample.pred_instances = InstanceData(**sample['pred_instances'])
        data_samples.append(data_sample)
    evaluator.process(data_samples)
    results = evaluator.evaluate(len(data_samples))
    assert results['coco/bbox_mAP'] == results['coco/segm_mAP'] == 1.0


def test_faster_coco_eval_is_used_when_importable(gt_file, monkeypatch):
    from pycocotools.coco import COCO as PyCOCO
    from pycocotools.cocoeval import COCOeval

    used = []

    class FakeFasterEval(COCOeval):
        def __init__(self, gt, dt, iou_type, print_function=None):
            used.append(print_function)
            super().__init__(gt, dt, iou_type)

    core = types.ModuleType('faster_coco_eval.core')
    core.COCO, core.COCOeval_faster = PyCOCO, FakeFasterEval
    monkeypatch.setitem(sys.modules, 'faster_coco_eval', types.ModuleType('faster_coco_eval'))
    monkeypatch.setitem(sys.modules, 'faster_coco_eval.core', core)
    faster = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), _predictions({1: 2}))
    assert used == [print, print]

    monkeypatch.setitem(sys.modules, 'faster_coco_eval.core', None)  # import now fails
    plain = _evaluate(CocoMetric(gt_file, metric=['bbox', 'segm']), _predictions({1: 2}))
    assert plain == faster and len(used) == 2


def test_nuclei_val_ground_truth_as_predictions_scores_one(nuclei):
    # the fixture fails under CI (and skips elsewhere) when ../shared/data is missing
    ann_file = nuclei / 'annotations' / 'instances_val.json'
    gt = json.loads(ann_file.read_text())
    samples = []
    for img in gt['images']:
        anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
        xyxy = torch.tensor([a['bbox'] for a in anns], dtype=torch.float32)
        xyxy[:, 2:] += xyxy[:, :2]
        pred = dict(
            bboxes=xyxy,
            scores=torch.ones(len(anns)),
            labels=torch.zeros(len(anns), dtype=torch.long),
            masks=[a['segmentation'] for a in anns],
        )
        samples.append(dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                            pred_instances=pred))  # fmt: skip
    assert sum(len(s['pred_instances']['masks']) for s in samples) == 2169
    metric = CocoMetric(str(ann_file), metric='segm', proposal_nums=(100, 1000, 3000))
    results = _evaluate(metric, samples, {'classes': ('nucleus',)})
    assert results['segm_mAP'] == 1.0
