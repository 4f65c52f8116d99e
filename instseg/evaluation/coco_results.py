"""Turning per-image predictions into COCO result records, and writing them to disk.

A prediction is kept compact from the moment the metric sees it: boxes, scores and labels as small
numpy arrays and masks as compressed RLE, so that results of thousands of images fit in memory and
travel cheaply between ranks.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch

# Masks are RLE-encoded in chunks so a [K, H, W] prediction never needs a second full-size copy.
_ENCODE_CHUNK = 32


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def encode_mask_results(masks: torch.Tensor | np.ndarray | Sequence[dict]) -> list[dict]:
    """Encode binary masks as compressed COCO RLE.

    Args:
        masks: BoolTensor / uint8 tensor or array [K, H, W], a list of K RLE dicts (compressed,
            or uncompressed with a list of counts), or a mask container with ``to_rle()``.

    Returns:
        K dicts ``{'size': [H, W], 'counts': bytes}``.
    """
    if isinstance(masks, (torch.Tensor, np.ndarray)):
        if masks.ndim != 3:
            raise ValueError(f'masks must have shape [K, H, W], got {tuple(masks.shape)}')
        encoded: list[dict] = []
        for start in range(0, masks.shape[0], _ENCODE_CHUNK):
            chunk = masks[start : start + _ENCODE_CHUNK]
            if isinstance(chunk, torch.Tensor):
                chunk = chunk.detach().to('cpu', torch.uint8).numpy()
            # pycocotools reads [H, W, K] column-major uint8.
            chunk = np.asfortranarray(chunk.astype(np.uint8, copy=False).transpose(1, 2, 0))
            encoded.extend(mask_util.encode(chunk))
        return encoded
    if hasattr(masks, 'to_rle'):
        masks = masks.to_rle()
    encoded = []
    for rle in masks:
        if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
            raise TypeError(
                'masks given as a list must hold COCO RLE dicts with "size" and "counts", '
                f'got {type(rle).__name__}'
            )
        if isinstance(rle['counts'], list):
            rle = mask_util.frPyObjects(rle, *rle['size'])
        encoded.append(rle)
    return encoded


def compact_prediction(sample: dict) -> dict:
    """Reduce one data sample dict to what COCO evaluation needs.

    Args:
        sample: ``img_id``, optional ``ori_shape`` (h, w) and ``pred_instances`` with ``bboxes``
            [K, 4] xyxy, ``scores`` [K], ``labels`` [K] and optionally ``masks`` ([K, H, W] or K RLE
            dicts at ``ori_shape``).

    Returns:
        ``img_id``, ``ori_shape``, ``bboxes`` float32 [K, 4], ``scores`` float32 [K], ``labels``
        int64 [K] and ``masks`` (K compressed RLE dicts, or None).
    """
    if 'img_id' not in sample:
        raise KeyError('CocoMetric: data sample has no "img_id" in its metainfo')
    img_id = int(sample['img_id'])
    if 'pred_instances' not in sample:
        raise KeyError(f'CocoMetric: data sample of image {img_id} has no "pred_instances"')
    pred = sample['pred_instances']
    for key in ('bboxes', 'scores', 'labels'):
        if key not in pred:
            raise KeyError(f'CocoMetric: pred_instances of image {img_id} has no {key!r}')
    bboxes = _to_numpy(pred['bboxes']).astype(np.float32).reshape(-1, 4)
    scores = _to_numpy(pred['scores']).astype(np.float32).reshape(-1)
    labels = _to_numpy(pred['labels']).astype(np.int64).reshape(-1)
    num = len(bboxes)
    if len(scores) != num or len(labels) != num:
        raise ValueError(
            f'CocoMetric: image {img_id} has {num} bboxes, {len(scores)} scores and '
            f'{len(labels)} labels; they must agree'
        )
    ori_shape = tuple(int(s) for s in sample['ori_shape'][:2]) if 'ori_shape' in sample else None
    masks = None
    if pred.get('masks') is not None:
        masks = encode_mask_results(pred['masks'])
        if len(masks) != num:
            raise ValueError(f'CocoMetric: image {img_id} has {len(masks)} masks for {num} boxes')
        if ori_shape is not None:
            for rle in masks:
                if tuple(rle['size']) != ori_shape:
                    raise ValueError(
                        f'CocoMetric: image {img_id} has a mask of size {tuple(rle["size"])}; '
                        f'masks must be at the original image size {ori_shape}'
                    )
    return dict(
        img_id=img_id,
        ori_shape=ori_shape,
        bboxes=bboxes,
        scores=scores,
        labels=labels,
        masks=masks,
    )


def to_coco_results(results: Sequence[dict], cat_ids: Sequence[int]) -> tuple[list, list]:
    """Build COCO result records from compact predictions.

    Args:
        results: outputs of :func:`compact_prediction`.
        cat_ids: COCO category id of each 0-based label.

    Returns:
        ``(bbox_results, segm_results)``: lists of dicts with ``image_id``, ``category_id``,
        ``score`` and ``bbox`` [x, y, w, h] or ``segmentation`` (RLE with str counts).
    """
    bbox_results: list[dict] = []
    segm_results: list[dict] = []
    for res in results:
        img_id = res['img_id']
        labels = res['labels']
        bad = labels[(labels < 0) | (labels >= len(cat_ids))]
        if len(bad):
            raise ValueError(
                f'CocoMetric: image {img_id} has predicted label {int(bad[0])}, but only '
                f'{len(cat_ids)} classes are known (labels must be in [0, {len(cat_ids) - 1}])'
            )
        xywh = res['bboxes'].copy()
        xywh[:, 2:] -= xywh[:, :2]
        scores = res['scores'].tolist()
        categories = [int(cat_ids[label]) for label in labels]
        for box, score, cat in zip(xywh.tolist(), scores, categories, strict=True):
            bbox_results.append(dict(image_id=img_id, category_id=cat, bbox=box, score=score))
        if res['masks'] is None:
            continue
        for rle, score, cat in zip(res['masks'], scores, categories, strict=True):
            counts = rle['counts']
            segmentation = dict(
                size=[int(s) for s in rle['size']],
                counts=counts.decode() if isinstance(counts, bytes) else counts,
            )
            # No 'bbox' here: pycocotools would then take the box area, not the mask area, to put a
            # detection into the small/medium/large ranges of mask AP.
            segm_results.append(
                dict(image_id=img_id, category_id=cat, segmentation=segmentation, score=score)
            )
    return bbox_results, segm_results


def dump_json_atomic(obj: Any, path: str) -> None:
    """Write ``obj`` as JSON to ``path`` so that readers never see a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix='.tmp_', suffix='.json')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
