"""Building COCO instance annotations from instance masks; shared by tools/dataset_converters.

Masks are written as compressed RLE (always exact) or as polygons. A polygon is traced along the
pixel edges of the mask, which pycocotools rasterises back to exactly the same pixels for any
mask without holes; an instance whose polygons would not reproduce it (a mask with a hole) is
written as RLE instead and counted in :attr:`CocoBuilder.rle_fallbacks`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from instseg.structures.masks.conversions import window_to_rle

from .image_io import decode_unchanged, load_image

MASK_FORMATS = ('rle', 'polygon')


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image as the loader shows it (any depth, EXIF applied)."""
    img = load_image(Path(path).read_bytes(), str(path))
    return img.shape[0], img.shape[1]


def read_label_map(path: str | Path) -> np.ndarray:
    """An instance-id image -> int64 [H, W] (0 = background); names the file when it is not a
    single-channel map of non-negative integers."""
    path = str(path)
    with open(path, 'rb') as f:
        labels = decode_unchanged(f.read(), path)
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[..., 0]
    if labels.ndim != 2:
        raise ValueError(f'{path}: an instance-id map must have one channel, got {labels.shape}')
    if np.issubdtype(labels.dtype, np.floating):
        if not np.array_equal(labels, np.round(labels)):
            raise ValueError(f'{path}: instance ids must be integers, found fractional values')
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'{path}: instance ids of type {labels.dtype} are not integers')
    labels = labels.astype(np.int64)
    if labels.min(initial=0) < 0:
        raise ValueError(f'{path}: instance ids must be >= 0, found {labels.min()}')
    return labels


def read_binary_mask(path: str | Path) -> np.ndarray:
    """A one-instance mask image -> bool [H, W]: every pixel that is non-zero in any channel."""
    path = str(path)
    with open(path, 'rb') as f:
        mask = decode_unchanged(f.read(), path)
    return mask.any(axis=2) if mask.ndim == 3 else mask > 0


def instance_windows(labels: np.ndarray) -> Iterator[tuple[int, np.ndarray, int, int]]:
    """Each instance of an id map [H, W] as (id, bool window [h, w] over its tight box, y0, x0),
    in increasing id order; costs one sort of the foreground pixels, not one pass per id."""
    flat = labels.ravel()
    foreground = np.flatnonzero(flat)
    if len(foreground) == 0:
        return
    ids = flat[foreground]
    order = np.argsort(ids, kind='stable')
    pixels, ids = foreground[order], ids[order]
    starts = np.flatnonzero(np.diff(ids, prepend=ids[0] - 1))
    ends = np.append(starts[1:], len(ids))
    width = labels.shape[1]
    for start, end in zip(starts, ends, strict=True):
        rows, cols = np.divmod(pixels[start:end], width)
        y0, x0 = int(rows.min()), int(cols.min())
        window = np.zeros((int(rows.max()) - y0 + 1, int(cols.max()) - x0 + 1), bool)
        window[rows - y0, cols - x0] = True
        yield int(ids[start]), window, y0, x0


def tight_window(mask: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """A full-size bool mask [H, W] -> (its tight-box window, y0, x0), or None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    y0, x0 = int(rows[0]), int(cols[0])
    return mask[y0 : rows[-1] + 1, x0 : cols[-1] + 1], y0, x0


def edge_polygons(window: np.ndarray, y0: int, x0: int) -> list[list[float]]:
    """Outer outlines of a bool window [h, w] at (y0, x0), traced along pixel edges, as COCO
    polygons [x1, y1, x2, y2, ...] in canvas coordinates (pixel (r, c) spans [c, c+1] x
    [r, r+1])."""
    # In a 2x upsampled mask every boundary pixel is the left/top (even index) or right/bottom
    # (odd index) half of a source pixel, so (u + 1) // 2 is the source pixel edge it lies on.
    padded = np.pad(window.astype(np.uint8), 1)
    up = cv2.resize(padded, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        points = (contour.reshape(-1, 2) + 1) // 2 - 1 + np.array([x0, y0])
        if len(points) >= 3:
            polygons.append(points.astype(float).ravel().tolist())
    return polygons


def window_annotation(
    window: np.ndarray, y0: int, x0: int, height: int, width: int, mask_format: str
) -> tuple[dict, bool]:
    """One instance (bool window [h, w] at (y0, x0) on a height x width canvas) -> its COCO
    fields ``segmentation``, ``area``, ``bbox``, ``iscrowd``, and whether a polygon asked for
    had to fall back to RLE."""
    rle = window_to_rle(window.astype(np.uint8), y0, x0, height, width)
    rows, cols = np.flatnonzero(window.any(axis=1)), np.flatnonzero(window.any(axis=0))
    bbox = [float(x0 + cols[0]), float(y0 + rows[0]),
            float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]  # fmt: skip
    segmentation: list | dict = dict(size=[height, width], counts=rle['counts'].decode('ascii'))
    fallback = False
    if mask_format == 'polygon':
        polygons = edge_polygons(window, y0, x0)
        traced = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        if traced['counts'] == rle['counts']:
            segmentation = polygons
        else:
            fallback = True
    area = int(np.count_nonzero(window))
    return dict(segmentation=segmentation, area=area, bbox=bbox, iscrowd=0), fallback


class CocoBuilder:
    """Collects images and instance masks into a COCO dict with ids numbered from 1.

    Args:
        class_names: category names; category ids are 1..K in this order.
        mask_format: ``'rle'`` or ``'polygon'``.
    """

    def __init__(self, class_names: Sequence[str], mask_format: str = 'rle') -> None:
        if mask_format not in MASK_FORMATS:
            raise ValueError(f'mask_format must be one of {MASK_FORMATS}, got {mask_format!r}')
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f'class names must be distinct and non-empty: {list(class_names)}')
        self.mask_format = mask_format
        self.categories = [dict(id=i + 1, name=name) for i, name in enumerate(class_names)]
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.rle_fallbacks = 0

    def add_image(self, file_name: str, height: int, width: int) -> int:
        """Register an image; returns its id."""
        image_id = len(self.images) + 1
        self.images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        return image_id

    def _add(self, image_id: int, category_id: int, window: np.ndarray, y0: int, x0: int) -> None:
        img = self.images[image_id - 1]
        fields, fallback = window_annotation(
            window, y0, x0, img['height'], img['width'], self.mask_format
        )
        self.rle_fallbacks += fallback
        ann = dict(id=len(self.annotations) + 1, image_id=image_id, category_id=category_id)
        self.annotations.append({**ann, **fields})

    def add_label_map(self, image_id: int, labels: np.ndarray, category_id: int = 1) -> int:
        """Add every instance of an id map [H, W] (0 = background); returns how many."""
        before = len(self.annotations)
        for _, window, y0, x0 in instance_windows(labels):
            self._add(image_id, category_id, window, y0, x0)
        return len(self.annotations) - before

    def add_mask(self, image_id: int, mask: np.ndarray, category_id: int = 1) -> bool:
        """Add one instance from a full-size bool mask [H, W]; False (nothing added) if empty."""
        tight = tight_window(mask)
        if tight is None:
            return False
        self._add(image_id, category_id, *tight)
        return True

    def to_dict(self, description: str = '') -> dict:
        """The COCO dict: info, images, annotations, categories."""
        return dict(
            info=dict(description=description),
            images=self.images,
            annotations=self.annotations,
            categories=self.categories,
        )


def check_shape(
    shape: tuple[int, ...], image_shape: tuple[int, int], path: Path, image: Path
) -> None:
    """Raise a ValueError naming both files when a mask's size differs from its image's."""
    if tuple(shape[:2]) != tuple(image_shape):
        raise ValueError(
            f'{path} is {shape[0]}x{shape[1]} (h x w) but its image {image} is '
            f'{image_shape[0]}x{image_shape[1]}'
        )


def write_coco_json(coco: dict, path: str | Path) -> None:
    """Write ``coco`` to ``path`` atomically: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def summary(coco: dict, path: str | Path, rle_fallbacks: int = 0) -> str:
    """One line for a converter to print: counts per category and where the file went."""
    per_cat = {cat['id']: 0 for cat in coco['categories']}
    for ann in coco['annotations']:
        per_cat[ann['category_id']] += 1
    names = ', '.join(f'{cat["name"]}: {per_cat[cat["id"]]}' for cat in coco['categories'])
    line = (
        f'wrote {path}: {len(coco["images"])} images, {len(coco["annotations"])} '
        f'instances ({names})'
    )
    if rle_fallbacks:
        line += f'; {rle_fallbacks} instances with holes kept as RLE (polygons cannot hold holes)'
    return line
