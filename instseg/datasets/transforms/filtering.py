"""Dropping instances too small to learn from, after the geometry has been applied."""

from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform

from instseg.registry import TRANSFORMS

from .geometric import keep_instances


@TRANSFORMS.register_module()
class FilterAnnotations(BaseTransform):
    """Drop instances whose box or mask is too small (mmdetection's rule and arguments).

    Args:
        min_gt_bbox_wh: an instance is kept when its box is wider than ``min_gt_bbox_wh[0]``
            and taller than ``min_gt_bbox_wh[1]`` (strictly). Defaults to (1, 1).
        min_gt_mask_area: with ``by_mask``, keep masks of at least this many pixels.
            Defaults to 1.
        by_box: apply the box rule. Defaults to True.
        by_mask: apply the mask rule (needs ``gt_masks``). Defaults to False.
        keep_empty: as in mmdetection, True means "return None when no instance is left" (the
            dataset then draws another image); False returns the image with no instance.
            Defaults to True.

    ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags`` and ``gt_masks`` stay aligned.
    An image that had no instance to begin with is returned unchanged.
    """

    def __init__(
        self,
        min_gt_bbox_wh: tuple[float, float] = (1, 1),
        min_gt_mask_area: int = 1,
        by_box: bool = True,
        by_mask: bool = False,
        keep_empty: bool = True,
    ) -> None:
        if not (by_box or by_mask):
            raise ValueError('FilterAnnotations: set by_box and/or by_mask')
        if len(min_gt_bbox_wh) != 2:
            raise ValueError(
                f'FilterAnnotations: min_gt_bbox_wh must be (w, h), got {min_gt_bbox_wh!r}'
            )
        self.min_gt_bbox_wh = tuple(min_gt_bbox_wh)
        self.min_gt_mask_area = min_gt_mask_area
        self.by_box = by_box
        self.by_mask = by_mask
        self.keep_empty = keep_empty

    def transform(self, results: dict) -> dict | None:
        """Keep the instances passing every enabled rule."""
        if 'gt_bboxes' not in results:
            raise KeyError(
                f'FilterAnnotations needs gt_bboxes (add LoadAnnotations before it) in '
                f'{results.get("img_path", "the results")}'
            )
        bboxes = results['gt_bboxes']
        if len(bboxes) == 0:
            return results
        keep = np.ones(len(bboxes), dtype=bool)
        if self.by_box:
            keep &= bboxes[:, 2] - bboxes[:, 0] > self.min_gt_bbox_wh[0]
            keep &= bboxes[:, 3] - bboxes[:, 1] > self.min_gt_bbox_wh[1]
        if self.by_mask:
            if results.get('gt_masks') is None:
                raise KeyError('FilterAnnotations(by_mask=True) needs gt_masks (with_mask=True)')
            keep &= results['gt_masks'].areas >= self.min_gt_mask_area
        if not keep.any() and self.keep_empty:
            return None
        keep_instances(results, keep)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(min_gt_bbox_wh={self.min_gt_bbox_wh}, '
            f'min_gt_mask_area={self.min_gt_mask_area}, by_box={self.by_box}, '
            f'by_mask={self.by_mask}, keep_empty={self.keep_empty})'
        )
