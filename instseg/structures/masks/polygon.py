"""Instance masks as COCO polygons: per instance a list of flat [x0, y0, x1, y1, ...] arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pycocotools.mask as mask_utils
import torch

from .base import BaseInstanceMasks, IndexLike, as_indices, as_roi_inputs, check_cat
from .conversions import polygons_to_rle
from .geometry import CanvasMap, check_out_shape, rotation_matrix

Polygons = list[list[np.ndarray]]


class PolygonMasks(BaseInstanceMasks):
    """N instances, each a list of polygons in continuous pixel coordinates (COCO's).

    Args:
        masks: per instance a list of flat float arrays [x0, y0, x1, y1, ...] (or [n, 2] arrays),
            each with at least 3 points. An instance may have no polygon (an empty mask).
        height: canvas height H.
        width: canvas width W.
    """

    def __init__(self, masks: Sequence[Sequence[np.ndarray]], height: int, width: int) -> None:
        if not isinstance(masks, (list, tuple)):
            raise ValueError(f'PolygonMasks: expected a list of instances, got {type(masks)}')
        checked = []
        for i, polys in enumerate(masks):
            if not isinstance(polys, (list, tuple)) or any(np.isscalar(p) for p in polys):
                raise ValueError(
                    f'PolygonMasks: instance {i} must be a list of polygons '
                    f'(flat coordinate arrays), got {polys!r:.80}'
                )
            checked.append([_as_polygon(p, i, j) for j, p in enumerate(polys)])
        self.masks: Polygons = checked
        self.height, self.width = int(height), int(width)

    @classmethod
    def _trusted(cls, masks: Polygons, height: int, width: int) -> PolygonMasks:
        """Build from polygons that are already float64 flat arrays (skips validation)."""
        obj = cls.__new__(cls)
        obj.masks, obj.height, obj.width = masks, int(height), int(width)
        return obj

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: IndexLike) -> PolygonMasks:
        idx = as_indices(index, len(self))
        masks = self.masks[idx] if isinstance(idx, slice) else [self.masks[i] for i in idx]
        return self._trusted(masks, self.height, self.width)

    @classmethod
    def cat(cls, masks: Sequence[PolygonMasks]) -> PolygonMasks:
        height, width = check_cat(cls, masks)
        return cls._trusted([polys for m in masks for polys in m.masks], height, width)

    def _map(
        self, fn: Callable[[np.ndarray], np.ndarray], out_h: int, out_w: int, clip: bool
    ) -> PolygonMasks:
        """Apply ``fn`` to all points [P, 2] at once; with ``clip`` cut polygons to the canvas."""
        packed = self._packed()
        if packed is None:
            return self._trusted([[] for _ in self.masks], out_h, out_w)
        xy, _, starts, _ = packed
        xy = fn(xy)
        pieces: list[np.ndarray | None] = list(np.split(xy, starts[1:]))
        if clip:
            lo, hi = np.minimum.reduceat(xy, starts), np.maximum.reduceat(xy, starts)
            inside = (lo >= 0).all(1) & (hi[:, 0] <= out_w) & (hi[:, 1] <= out_h)
            outside = (hi <= 0).any(1) | (lo[:, 0] >= out_w) | (lo[:, 1] >= out_h)
            for k in np.flatnonzero(~inside).tolist():
                part = None if outside[k] else clip_polygon(pieces[k], out_w, out_h)
                pieces[k] = part if part is not None and len(part) >= 3 else None
        out: Polygons = []
        k = 0
        for polys in self.masks:
            group = pieces[k : k + len(polys)]
            out.append([p.reshape(-1) for p in group if p is not None])
            k += len(polys)
        return self._trusted(out, out_h, out_w)

    def _moved(self, canvas_map: CanvasMap) -> PolygonMasks:
        """Move every point by the map's affine step; cut polygons to the new canvas when the
        step cut some content (a crop or a shift), so that no point lies outside it."""
        (out_h, out_w), y, x = canvas_map.shape, canvas_map.y, canvas_map.x
        if (x.scale, x.offset, y.scale, y.offset) == (1, 0, 1, 0) and not (x.cuts or y.cuts):
            return self._trusted(self.masks, out_h, out_w)  # a pad: the points stay
        scale = np.array([float(x.scale), float(y.scale)])
        offset = np.array([float(x.offset), float(y.offset)])
        return self._map(lambda xy: xy * scale + offset, out_h, out_w, clip=x.cuts or y.cuts)

    def rotate(
        self,
        out_shape: tuple[int, int],
        angle: float,
        center: tuple[float, float] | None = None,
        scale: float = 1.0,
    ) -> PolygonMasks:
        out_h, out_w = check_out_shape(out_shape, 'rotate')
        matrix = rotation_matrix(self.height, self.width, angle, center, scale)
        # The matrix works on pixel indices (centres at integers); polygons put centres at +0.5.
        return self._map(
            lambda xy: (xy - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5, out_h, out_w, clip=True
        )

    def crop_and_resize(
        self,
        bboxes: torch.Tensor,
        out_shape: tuple[int, int],
        inds: torch.Tensor,
        device: torch.device | str = 'cpu',
    ) -> torch.Tensor:
        boxes, idx = as_roi_inputs(bboxes, inds, len(self))
        out_h, out_w = int(out_shape[0]), int(out_shape[1])
        if len(boxes) == 0:
            return torch.zeros((0, out_h, out_w), dtype=torch.float32, device=device)
        rles = []
        for (x1, y1, x2, y2), i in zip(boxes.tolist(), idx.tolist(), strict=True):
            # Boxes under a pixel wide are widened to one pixel, as mmdetection does.
            scale = np.array([out_w / max(x2 - x1, 1.0), out_h / max(y2 - y1, 1.0)])
            origin = np.array([x1, y1])
            polys = [((p.reshape(-1, 2) - origin) * scale).reshape(-1) for p in self.masks[i]]
            rles.append(polygons_to_rle(polys, out_h, out_w))
        targets = mask_utils.decode(rles).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(targets)).to(device, torch.float32)

    def to_ndarray(self) -> np.ndarray:
        if len(self) == 0:
            return np.zeros((0, self.height, self.width), dtype=np.uint8)
        return np.ascontiguousarray(mask_utils.decode(self.to_rle()).transpose(2, 0, 1))

    def to_rle(self) -> list[dict]:
        return [polygons_to_rle(polys, self.height, self.width) for polys in self.masks]

    def to_polygons(self) -> PolygonMasks:
        return self._trusted([list(polys) for polys in self.masks], self.height, self.width)

    @property
    def areas(self) -> np.ndarray:
        """Shoelace area per instance, summed over its polygons (mmdetection's rule)."""
        areas = np.zeros(len(self), dtype=np.float64)
        packed = self._packed()
        if packed is not None:
            xy, sizes, starts, owner = packed
            nxt = np.arange(1, len(xy) + 1)
            nxt[starts + sizes - 1] = starts  # each polygon closes on its own first point
            cross = xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1]
            np.add.at(areas, owner, 0.5 * np.abs(np.add.reduceat(cross, starts)))
        return areas.astype(np.float32)

    def get_bboxes(self) -> np.ndarray:
        """Extent of the polygons clipped to the canvas -> float32[N, 4] xyxy."""
        boxes = np.zeros((len(self), 4), dtype=np.float64)
        packed = self._packed()
        if packed is not None:
            xy, _, starts, owner = packed
            lo = np.full((len(self), 2), np.inf)
            hi = np.full((len(self), 2), -np.inf)
            np.minimum.at(lo, owner, np.minimum.reduceat(xy, starts))
            np.maximum.at(hi, owner, np.maximum.reduceat(xy, starts))
            has = np.isfinite(lo[:, 0])
            boxes[has] = np.concatenate([lo[has], hi[has]], axis=1)
            boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, self.width)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, self.height)
        return boxes.astype(np.float32)

    def _packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """All points [P, 2] with per-polygon sizes, start rows and owning instance; None if
        there is no polygon."""
        flat = [p for polys in self.masks for p in polys]
        if not flat:
            return None
        sizes = np.array([len(p) // 2 for p in flat])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        owner = np.repeat(np.arange(len(self)), [len(polys) for polys in self.masks])
        return np.concatenate(flat).reshape(-1, 2), sizes, starts, owner


def _as_polygon(poly: np.ndarray, instance: int, index: int) -> np.ndarray:
    arr = np.asarray(poly, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or len(arr) % 2 or len(arr) < 6:
        raise ValueError(
            f'PolygonMasks: polygon {index} of instance {instance} has '
            f'{arr.size} coordinates; a polygon needs at least 3 (x, y) points'
        )
    if not np.isfinite(arr).all():
        raise ValueError(
            f'PolygonMasks: polygon {index} of instance {instance} has non-finite coordinates'
        )
    return arr


def clip_polygon(xy: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland-Hodgman: cut polygon points [n, 2] to [0, width] x [0, height] -> [m, 2]."""
    for axis, bound, keep_above in (
        (0, 0.0, True),
        (0, width, False),
        (1, 0.0, True),
        (1, height, False),
    ):
        if len(xy) == 0:
            break
        v = xy[:, axis]
        inside = v >= bound if keep_above else v <= bound
        if inside.all():
            continue
        nxt = np.roll(xy, -1, axis=0)
        nxt_inside = np.roll(inside, -1)
        crosses = inside != nxt_inside
        step = nxt[:, axis] - v
        t = np.where(crosses, (bound - v) / np.where(crosses, step, 1.0), 0.0)
        cut = xy + t[:, None] * (nxt - xy)
        cut[:, axis] = bound
        # Per edge (p -> next): the crossing point if it crosses, then next if next is kept.
        candidates = np.stack([cut, nxt], axis=1)
        xy = candidates[np.stack([crosses, nxt_inside], axis=1)]
    return xy
