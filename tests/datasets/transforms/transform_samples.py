"""Generated pipeline inputs for the transform tests: images with blob-shaped instances."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from instseg.structures.masks import BitmapMasks, PolygonMasks, RLEMasks


def blob_polygons(
    rng: np.random.Generator, n: int, h: int, w: int, radius: tuple[float, float] = (7, 14)
) -> list[list[np.ndarray]]:
    """n rotated ellipses (24 vertices, semi-major axis drawn from ``radius``, aspect ratio up
    to 1.6, like cell nuclei), anywhere on the canvas (some run over the border, clipped)."""
    out = []
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    for _ in range(n):
        a = rng.uniform(*radius)
        b = a / rng.uniform(1.0, 1.6)
        theta = rng.uniform(0, np.pi)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x, y = a * np.cos(t), b * np.sin(t)
        xy = np.stack(
            [
                cx + x * np.cos(theta) - y * np.sin(theta),
                cy + x * np.sin(theta) + y * np.cos(theta),
            ],
            1,
        )
        xy[:, 0] = xy[:, 0].clip(0, w)
        xy[:, 1] = xy[:, 1].clip(0, h)
        out.append([xy.reshape(-1)])
    return out


def make_results(rng: np.random.Generator, n: int, h: int, w: int, kind: str = 'rle') -> dict:
    """A pipeline results dict: a BGR image with the blobs painted, ``gt_bboxes`` the masks'
    tight boxes (for polygons their extent, as in COCO files), ``gt_bboxes_labels`` = instance
    index (to trace instances), ``gt_ignore_flags`` all False, ``gt_masks`` of ``kind`` ('rle',
    'polygon' or 'bitmap'), and ``source_polygons`` (the instances as PolygonMasks)."""
    polys = PolygonMasks(blob_polygons(rng, n, h, w), h, w)
    rle = RLEMasks.from_polygons(polys)
    keep = rle.areas > 0
    polys, rle = polys[keep], rle[keep]
    masks = {'rle': rle, 'polygon': polys, 'bitmap': BitmapMasks(rle.to_ndarray(), h, w)}[kind]
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for i, m in enumerate(rle.to_ndarray()):
        img[m > 0] = (40 + 20 * i) % 256
    return dict(
        img=img,
        img_shape=(h, w),
        ori_shape=(h, w),
        gt_bboxes=masks.get_bboxes(),
        gt_bboxes_labels=np.arange(len(rle), dtype=np.int64),
        gt_ignore_flags=np.zeros(len(rle), dtype=bool),
        gt_masks=masks,
        source_polygons=polys,
    )


def write_coco(root: Path, rng: np.random.Generator, sizes: list[tuple[int, int]]) -> Path:
    """A COCO-style dataset under ``root`` (images/*.png, annotations/train.json) with blob
    instances of two classes, polygons and RLEs mixed -> the annotation file."""
    from pycocotools import mask as mask_utils

    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    images, annotations = [], []
    for img_id, (h, w) in enumerate(sizes, start=1):
        results = make_results(rng, 8, h, w, kind='polygon')
        name = f'{img_id:04d}.png'
        cv2.imwrite(str(root / 'images' / name), results['img'])
        images.append(dict(id=img_id, file_name=name, height=h, width=w))
        masks, boxes = results['gt_masks'].masks, results['gt_bboxes']
        for k, (polys, box) in enumerate(zip(masks, boxes, strict=True)):
            if k % 2:
                segm = mask_utils.merge(mask_utils.frPyObjects([p.tolist() for p in polys], h, w))
                segm['counts'] = segm['counts'].decode()
            else:
                segm = [p.tolist() for p in polys]
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                dict(id=len(annotations) + 1, image_id=img_id, category_id=1 + k % 2,
                     bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                     iscrowd=0, segmentation=segm)
            )  # fmt: skip
    categories = [dict(id=1, name='round'), dict(id=2, name='blob')]
    ann_file = root / 'annotations' / 'train.json'
    ann_file.write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories))
    )
    return ann_file
