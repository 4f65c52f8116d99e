"""Merging the detections of overlapping tiles into one set for the whole image.

An object in the overlap of two tiles is found twice, and one cut by a tile border comes back as
two partial detections. Duplicates are detections of *different* tiles with the same label whose
masks (boxes, for a box-only model) overlap by at least ``iou_thr`` intersection over the smaller
one; the detections of one tile were already de-duplicated by the detector's NMS, and touching
objects inside a tile stay apart. Duplicates are merged greedily, best score first (each
detection absorbs its not yet absorbed duplicates), into one detection whose mask is the union of
the members' masks, whose box is that union's tight box and whose score is the best member's.
"""

from __future__ import annotations

import numpy as np
import torch
from mmengine.structures import InstanceData

from .predicted_masks import PredictedMasks


def _box_intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas [A, B] of xyxy boxes a [A, 4] and b [B, 4]."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def candidate_pairs(boxes: np.ndarray, tile_ids: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, of detections from different, overlapping tiles whose boxes
    intersect -> int64 [P, 2]. Only detections reaching into the other tile are compared, so the
    cost follows the detections near tile borders, not all pairs."""
    pairs = []
    order = np.argsort(tile_ids, kind='stable')
    starts = np.searchsorted(tile_ids[order], np.arange(len(windows) + 1))
    tiles_overlap = _box_intersections(windows.astype(np.float64), windows.astype(np.float64)) > 0
    for a, b in zip(*np.nonzero(np.triu(tiles_overlap, k=1)), strict=True):
        in_a, in_b = order[starts[a] : starts[a + 1]], order[starts[b] : starts[b + 1]]
        if not len(in_a) or not len(in_b):
            continue
        in_a = in_a[_box_intersections(boxes[in_a], windows[b : b + 1])[:, 0] > 0]
        in_b = in_b[_box_intersections(boxes[in_b], windows[a : a + 1])[:, 0] > 0]
        if not len(in_a) or not len(in_b):
            continue
        ia, ib = np.nonzero(_box_intersections(boxes[in_a], boxes[in_b]) > 0)
        pairs.append(np.stack([in_a[ia], in_b[ib]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(pairs), axis=1)
    return np.unique(pairs, axis=0)


def _mask_intersection(masks: PredictedMasks, i: int, j: int) -> int:
    pi, xi, yi = masks.window(i)
    pj, xj, yj = masks.window(j)
    x0, y0 = max(xi, xj), max(yi, yj)
    x1 = min(xi + pi.shape[1], xj + pj.shape[1])
    y1 = min(yi + pi.shape[0], yj + pj.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0
    a = pi[y0 - yi : y1 - yi, x0 - xi : x1 - xi]
    b = pj[y0 - yj : y1 - yj, x0 - xj : x1 - xj]
    return int(np.count_nonzero(a & b))


def _union(masks: PredictedMasks, members: list[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Union of the member masks -> (bool patch, window (x0, y0, x1, y1))."""
    windows = masks.windows[members]
    x0, y0 = windows[:, 0].min(), windows[:, 1].min()
    x1, y1 = windows[:, 2].max(), windows[:, 3].max()
    patch = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for k in members:
        part, px, py = masks.window(k)
        patch[py - y0 : py - y0 + part.shape[0], px - x0 : px - x0 + part.shape[1]] |= part
    return patch, (int(x0), int(y0), int(x1), int(y1))


def merge_tile_detections(
    detections: InstanceData,
    tile_ids: np.ndarray,
    windows: np.ndarray,
    iou_thr: float = 0.5,
) -> InstanceData:
    """Merge duplicates across tiles.

    Args:
        detections: every tile's detections in image coordinates: ``bboxes`` [N, 4], ``scores``
            [N], ``labels`` [N] and optionally ``masks`` (:class:`PredictedMasks` on the image).
        tile_ids: int [N], the tile each detection came from (an index into ``windows``).
        windows: int [T, 4] (x0, y0, x1, y1), the tiles.
        iou_thr: intersection over the smaller mask (box) at which two detections are one
            object. Defaults to 0.5.

    Returns:
        The merged detections, best score first, with the same fields.
    """
    if not 0.0 < iou_thr <= 1.0:
        raise ValueError(f'tile merge iou_thr must be in (0, 1], got {iou_thr!r}')
    num = len(detections)
    if num == 0:
        return detections
    boxes = detections.bboxes.detach().float().cpu().numpy().astype(np.float64)
    scores = detections.scores.detach().float().cpu().numpy()
    labels = detections.labels.detach().cpu().numpy()
    masks = detections.get('masks')
    tile_ids = np.asarray(tile_ids, dtype=np.int64)
    pairs = candidate_pairs(boxes, tile_ids, np.asarray(windows, dtype=np.int64))
    pairs = pairs[labels[pairs[:, 0]] == labels[pairs[:, 1]]]
    if masks is not None:
        areas = masks.areas.astype(np.float64)
        inter = np.array([_mask_intersection(masks, i, j) for i, j in pairs], dtype=np.float64)
    else:
        areas = _box_areas(boxes)
        inter = np.array([_box_intersections(boxes[[i]], boxes[[j]])[0, 0] for i, j in pairs])
    smaller = np.minimum(areas[pairs[:, 0]], areas[pairs[:, 1]]) if len(pairs) else np.zeros(0)
    same = pairs[inter.reshape(-1) >= iou_thr * np.maximum(smaller, 1e-6)]
    partners: list[list[int]] = [[] for _ in range(num)]
    for i, j in same.tolist():
        partners[i].append(j)
        partners[j].append(i)
    order = np.argsort(-scores, kind='stable')
    absorbed = np.zeros(num, dtype=bool)
    groups: list[list[int]] = []
    for i in order.tolist():
        if absorbed[i]:
            continue
        absorbed[i] = True
        members = [i] + [j for j in partners[i] if not absorbed[j]]
        absorbed[members] = True
        groups.append(members)
    heads = np.array([g[0] for g in groups], dtype=np.int64)
    index = torch.from_numpy(heads).to(detections.scores.device)
    merged = InstanceData(
        metainfo=detections.metainfo,
        **{k: v[index] for k, v in detections.items() if k != 'masks'},
    )
    multi = [k for k, g in enumerate(groups) if len(g) > 1]
    if masks is not None:
        kept = masks[heads]
        if multi:
            patches = [kept.window(k)[0] for k in range(len(kept))]
            new_windows = kept.windows
            for k in multi:
                patches[k], new_windows[k] = _union(masks, groups[k])
            kept = PredictedMasks.from_patches(patches, new_windows, masks.height, masks.width)
        merged.masks = kept
    if not multi:
        return merged
    new_boxes = merged.bboxes.clone()
    if masks is not None:
        tight = torch.from_numpy(merged.masks[multi].get_bboxes())
        new_boxes[multi] = tight.to(new_boxes)
    else:
        for k in multi:
            group = boxes[groups[k]]
            union = [group[:, 0].min(), group[:, 1].min(), group[:, 2].max(), group[:, 3].max()]
            new_boxes[k] = torch.tensor(union, dtype=new_boxes.dtype)
    merged.bboxes = new_boxes
    return merged
