"""NumpyCOCOeval must match pycocotools' COCOeval exactly, only faster."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from instseg.evaluation.numpy_cocoeval import NumpyCOCOeval


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_numpy_matching_equals_pycocotools(tmp_path, seed):
    # Clustered boxes (so detections compete for the same objects), duplicated boxes (IoU ties),
    # crowd regions, all area ranges, tied scores, and more detections than the smallest maxDets.
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for img_id in range(1, 4):
        images.append(dict(id=img_id, width=400, height=400))
        centres = rng.uniform(50, 350, size=(6, 2))
        for _ in range(25):
            cx, cy = centres[rng.integers(6)] + rng.normal(0, 8, 2)
            w, h = rng.choice([12, 40, 120]) * rng.uniform(0.8, 1.2, 2)
            box = [round(cx - w / 2, 1), round(cy - h / 2, 1), round(w, 1), round(h, 1)]
            cat = int(rng.integers(1, 3))
            crowd = int(rng.random() < 0.1)
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=cat, bbox=box,
                             area=box[2] * box[3], iscrowd=crowd))  # fmt: skip
            for _ in range(int(rng.integers(0, 3))):
                jitter = box if rng.random() < 0.3 else list(np.add(box, rng.normal(0, 3, 4)))
                score = float(rng.choice([0.5, 0.9])) if rng.random() < 0.3 else rng.random()
                dets.append(dict(image_id=img_id, category_id=cat, bbox=jitter, score=score))
    path = tmp_path / 'random.json'
    categories = [dict(id=1, name='a'), dict(id=2, name='b')]
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=categories)))
    gt = COCO(str(path))
    for use_cats in (1, 0):
        evals = []
        for cls in (COCOeval, NumpyCOCOeval):
            evaluator = cls(gt, gt.loadRes([dict(d) for d in dets]), 'bbox')
            evaluator.params.maxDets = [5, 20, 100]
            evaluator.params.useCats = use_cats
            evaluator.evaluate()
            evaluator.accumulate()
            evals.append(evaluator)
        reference, fast = evals
        assert len(reference.evalImgs) == len(fast.evalImgs)
        for ref_img, fast_img in zip(reference.evalImgs, fast.evalImgs, strict=True):
            assert (ref_img is None) == (fast_img is None)
            if ref_img is None:
                continue
            for key in ('dtMatches', 'gtMatches', 'dtIgnore', 'gtIgnore', 'dtIds', 'gtIds'):
                np.testing.assert_array_equal(ref_img[key], fast_img[key])
        np.testing.assert_array_equal(reference.eval['precision'], fast.eval['precision'])
        np.testing.assert_array_equal(reference.eval['recall'], fast.eval['recall'])
        assert (reference.eval['precision'] > 0).sum() > 100  # the case is not trivial
