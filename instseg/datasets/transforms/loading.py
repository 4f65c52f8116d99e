"""Loading images and annotations into a pipeline's results dict."""

from __future__ import annotations

import numpy as np
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
from mmcv.transforms import LoadImageFromFile
from pycocotools import mask as mask_utils

from instseg.registry import TRANSFORMS
from instseg.structures.masks import PolygonMasks, RLEMasks

# mmcv's loader already reads ``img_path`` (naming it when the file is missing or undecodable)
# and sets ``img``, ``img_shape`` and ``ori_shape``; instseg needs nothing more from it.
TRANSFORMS.register_module(module=LoadImageFromFile)


def _empty_rle(height: int, width: int) -> dict:
    return mask_utils.frPyObjects(
        {'size': [height, width], 'counts': [height * width]}, height, width
    )


def _valid_polygons(segmentation: list) -> list[list[float]]:
    # COCO polygons need >= 3 (x, y) points; pycocotools would read a 4-number list as a box.
    return [p for p in segmentation if len(p) >= 6 and len(p) % 2 == 0]


@TRANSFORMS.register_module()
class LoadAnnotations(MMCVLoadAnnotations):
    """Turn a record's ``instances`` into ground-truth arrays and a compact mask container.

    Adds ``gt_bboxes`` float32 [N, 4] (x1, y1, x2, y2), ``gt_bboxes_labels`` int64 [N],
    ``gt_ignore_flags`` bool [N] and, with ``with_mask``, ``gt_masks``: :class:`RLEMasks` when
    ``poly2mask`` (polygons rasterised to RLE, RLE kept) or :class:`PolygonMasks` otherwise.
    Full-size bitmaps are never built here. An instance whose polygons are all degenerate gets an
    empty mask and is marked ignored.

    Args:
        with_bbox: load ``gt_bboxes`` and ``gt_ignore_flags``.
        with_label: load ``gt_bboxes_labels``.
        with_mask: load ``gt_masks``.
        poly2mask: rasterise polygons to RLE; False keeps polygons (and rejects RLE instances).
        box_type: only None or ``'hbox'`` (boxes stay plain numpy arrays).
        backend_args: mmengine file backend arguments (kept for mmdetection compatibility).
    """

    def __init__(
        self,
        with_bbox: bool = True,
        with_label: bool = True,
        with_mask: bool = False,
        poly2mask: bool = True,
        box_type: str | None = None,
        backend_args: dict | None = None,
    ) -> None:
        super().__init__(with_bbox=with_bbox, with_label=with_label, backend_args=backend_args)
        if box_type not in (None, 'hbox'):
            raise ValueError(f"box_type must be None or 'hbox' (plain arrays), got {box_type!r}")
        self.with_mask = with_mask
        self.poly2mask = poly2mask
        self.box_type = box_type

    def _load_bboxes(self, results: dict) -> None:
        instances = results.get('instances', [])
        results['gt_bboxes'] = np.array(
            [inst['bbox'] for inst in instances], dtype=np.float32
        ).reshape(-1, 4)
        self._load_ignore_flags(results)

    def _load_labels(self, results: dict) -> None:
        results['gt_bboxes_labels'] = np.array(
            [inst['bbox_label'] for inst in results.get('instances', [])], dtype=np.int64
        )

    @staticmethod
    def _load_ignore_flags(results: dict) -> None:
        results['gt_ignore_flags'] = np.array(
            [inst.get('ignore_flag', 0) for inst in results.get('instances', [])], dtype=bool
        )

    def _load_masks(self, results: dict) -> None:
        if 'ori_shape' in results:
            height, width = results['ori_shape'][:2]
        else:
            height, width = results['height'], results['width']
        if 'gt_ignore_flags' not in results:
            self._load_ignore_flags(results)
        where = results.get('img_path', results.get('img_id', '?'))
        masks = []
        for i, inst in enumerate(results.get('instances', [])):
            segm = inst.get('mask')
            if self.poly2mask:
                rle = self._to_rle(segm, height, width, where)
                if rle is None:
                    rle = _empty_rle(height, width)
                    results['gt_ignore_flags'][i] = True
                masks.append(rle)
            else:
                if isinstance(segm, dict):
                    raise ValueError(
                        f'{where}: instance {i} is annotated as RLE, which PolygonMasks cannot '
                        f'hold; use LoadAnnotations(poly2mask=True)'
                    )
                polygons = _valid_polygons(segm or [])
                if not polygons:
                    polygons = [np.zeros(6)]
                    results['gt_ignore_flags'][i] = True
                masks.append([np.asarray(p, dtype=np.float64) for p in polygons])
        container = RLEMasks if self.poly2mask else PolygonMasks
        results['gt_masks'] = container(masks, height, width)

    @staticmethod
    def _to_rle(segm: list | dict | None, height: int, width: int, where: str) -> dict | None:
        """A COCO segmentation as compressed RLE, or None when it has no valid polygon."""
        if isinstance(segm, list):
            polygons = _valid_polygons(segm)
            if not polygons:
                return None
            return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        if not isinstance(segm, dict) or 'counts' not in segm or 'size' not in segm:
            raise ValueError(
                f'{where}: a mask must be a polygon list or an RLE dict with "counts" and "size", '
                f'got {type(segm).__name__}'
            )
        if list(segm['size']) != [height, width]:
            raise ValueError(
                f'{where}: RLE size {list(segm["size"])} differs from the image size '
                f'{[height, width]}'
            )
        if isinstance(segm['counts'], list):
            return mask_utils.frPyObjects(segm, height, width)
        return segm

    def transform(self, results: dict) -> dict:
        """Add the ``gt_*`` keys selected by ``with_bbox``, ``with_label`` and ``with_mask``."""
        if self.with_bbox:
            self._load_bboxes(results)
        if self.with_label:
            self._load_labels(results)
        if self.with_mask:
            self._load_masks(results)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(with_bbox={self.with_bbox}, with_label={self.with_label}, '
            f'with_mask={self.with_mask}, poly2mask={self.poly2mask}, '
            f'backend_args={self.backend_args})'
        )
