"""The interface shared by the instance-mask containers, plus index and argument helpers.

Pixel convention (all containers): pixel ``(row i, column j)`` covers the continuous square
``[j, j + 1) x [i, i + 1)``; a pixel belongs to a polygon when its centre ``(j + 0.5, i + 0.5)``
lies inside (what pycocotools rasterises). Every resampling (resize, translate, rotate, RoI
targets) samples at pixel centres, so polygons, bitmaps and RLEs give the same pixels up to
edge rounding, and bitmaps and RLEs give exactly the same pixels.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Iterator, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch

IndexLike = Any  # int, slice, list[int], np.ndarray (int or bool), torch.Tensor (int or bool)
FLIP_DIRECTIONS = ('horizontal', 'vertical', 'diagonal')


class BaseInstanceMasks(metaclass=ABCMeta):
    """N instance masks on one ``height x width`` canvas; every operation returns a new container.

    Subclasses: :class:`PolygonMasks`, :class:`BitmapMasks`, :class:`RLEMasks`.
    """

    height: int
    width: int

    @abstractmethod
    def __len__(self) -> int:
        """Number of instances N."""

    @abstractmethod
    def __getitem__(self, index: IndexLike) -> BaseInstanceMasks:
        """Select instances (int, slice, list, int/bool ndarray or Tensor) -> same class."""

    def __repr__(self) -> str:
        name = type(self).__name__
        return f'{name}(num_masks={len(self)}, height={self.height}, width={self.width})'

    @classmethod
    @abstractmethod
    def cat(cls, masks: Sequence[BaseInstanceMasks]) -> BaseInstanceMasks:
        """Concatenate containers of this class sharing one canvas -> one container."""

    @classmethod
    @abstractmethod
    def empty(cls, height: int, width: int) -> BaseInstanceMasks:
        """A container with no instance on a ``height x width`` canvas."""

    @abstractmethod
    def resize(self, out_shape: tuple[int, int]) -> BaseInstanceMasks:
        """Scale the content to an ``(h, w)`` canvas (nearest pixel centre)."""

    def rescale(self, scale: float) -> BaseInstanceMasks:
        """Resize by ``scale`` keeping the aspect ratio; new size ``int(size * scale + 0.5)``."""
        if not isinstance(scale, Real) or scale <= 0:
            raise ValueError(f'rescale expects a positive float scale, got {scale!r}')
        out_shape = (int(self.height * scale + 0.5), int(self.width * scale + 0.5))
        return self.resize(out_shape)

    @abstractmethod
    def flip(self, direction: str = 'horizontal') -> BaseInstanceMasks:
        """Mirror the canvas: 'horizontal' (left-right), 'vertical' (up-down) or 'diagonal'."""

    @abstractmethod
    def crop(self, bbox: np.ndarray) -> BaseInstanceMasks:
        """Cut the window ``bbox`` = int [x1, y1, x2, y2] (clipped to the canvas); it becomes the
        new canvas of ``max(y2 - y1, 1) x max(x2 - x1, 1)`` pixels."""

    @abstractmethod
    def pad(self, out_shape: tuple[int, int]) -> BaseInstanceMasks:
        """Grow the canvas to ``(h, w)`` by adding empty rows at the bottom and columns at the
        right."""

    @abstractmethod
    def translate(
        self, out_shape: tuple[int, int], offset: float, direction: str = 'horizontal'
    ) -> BaseInstanceMasks:
        """Shift the content by ``offset`` pixels ('horizontal': along x, 'vertical': along y) on
        a new ``(h, w)`` canvas anchored at the top-left; content leaving the canvas is cut."""

    @abstractmethod
    def rotate(
        self,
        out_shape: tuple[int, int],
        angle: float,
        center: tuple[float, float] | None = None,
        scale: float = 1.0,
    ) -> BaseInstanceMasks:
        """Rotate by ``angle`` degrees counter-clockwise (``cv2.getRotationMatrix2D``) around
        ``center`` = (x, y) in pixel-index coordinates (default: the canvas centre
        ``((w - 1) / 2, (h - 1) / 2)``), onto an ``(h, w)`` canvas."""

    @abstractmethod
    def crop_and_resize(
        self,
        bboxes: torch.Tensor,
        out_shape: tuple[int, int],
        inds: torch.Tensor,
        device: torch.device | str = 'cpu',
    ) -> torch.Tensor:
        """Mask-head targets: for each box ``bboxes[k]`` (Tensor[K, 4] float xyxy on this canvas)
        resample instance ``inds[k]`` inside the box to ``out_shape`` and binarise at 0.5
        -> float32 Tensor[K, h, w] of 0/1 on ``device``."""

    @abstractmethod
    def to_ndarray(self) -> np.ndarray:
        """All masks as uint8 ndarray[N, H, W] (allocates N full-size bitmaps)."""

    def to_tensor(
        self, dtype: torch.dtype = torch.uint8, device: torch.device | str = 'cpu'
    ) -> torch.Tensor:
        """All masks as Tensor[N, H, W] of ``dtype`` on ``device``."""
        return torch.from_numpy(self.to_ndarray()).to(dtype=dtype, device=device)

    def to_bitmap(self) -> BaseInstanceMasks:
        """The same masks as :class:`BitmapMasks` (allocates N full-size bitmaps)."""
        from .bitmap import BitmapMasks

        return BitmapMasks(self.to_ndarray(), self.height, self.width)

    def to_rle_masks(self) -> BaseInstanceMasks:
        """The same masks as :class:`RLEMasks` (pixel-exact)."""
        from .rle import RLEMasks

        return RLEMasks(self.to_rle(), self.height, self.width)

    def to_polygons(self) -> BaseInstanceMasks:
        """The masks as :class:`PolygonMasks`: one polygon per connected region, tracing its
        pixels' outline a quarter pixel inside, so that it rasterises back to the same pixels.
        Holes cannot be expressed by COCO polygons (their union is the mask): they are filled."""
        from .polygon import PolygonMasks, window_to_polygons

        polys = [[] if t is None else window_to_polygons(*t) for t in self._tight_windows()]
        return PolygonMasks._trusted(polys, self.height, self.width)

    def _tight_windows(self) -> Iterator[tuple[np.ndarray, int, int] | None]:
        """Per instance its pixels inside its tight box as (uint8 window, y0, x0), or None when
        it is empty. Subclasses avoid the full-size bitmap this fallback decodes."""
        for i, (x1, y1, x2, y2) in enumerate(self.get_bboxes().astype(np.int64).tolist()):
            if x2 <= x1 or y2 <= y1:
                yield None
            else:
                yield self[i].to_ndarray()[0, y1:y2, x1:x2], y1, x1

    @abstractmethod
    def to_rle(self) -> list[dict]:
        """COCO RLE dicts (``size`` [H, W], ``counts`` bytes) at the current canvas, one per
        instance."""

    @property
    @abstractmethod
    def areas(self) -> np.ndarray:
        """float32 ndarray[N]: foreground area of each instance."""

    @abstractmethod
    def get_bboxes(self) -> np.ndarray:
        """float32 ndarray[N, 4]: tight xyxy boxes (x2 = last column + 1); zeros when empty."""


def as_indices(index: IndexLike, length: int) -> slice | np.ndarray:
    """Normalise an instance index: a slice is kept, anything else becomes int64 ndarray[M]."""
    if isinstance(index, slice):
        return index
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    if isinstance(index, (bool, np.bool_)):
        raise TypeError(f'cannot index {length} masks with a bare bool {index!r}')
    if isinstance(index, (int, np.integer)):
        index = [int(index)]
    arr = np.asarray(index)
    if arr.ndim != 1:
        raise IndexError(f'mask index must be 1-D, got shape {arr.shape}')
    if arr.dtype == np.bool_:
        if len(arr) != length:
            raise IndexError(f'boolean mask index has length {len(arr)}, expected {length}')
        return np.flatnonzero(arr)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f'mask index must be integers or booleans, got dtype {arr.dtype}')
    arr = arr.astype(np.int64)
    bad = (arr < -length) | (arr >= length)
    if bad.any():
        raise IndexError(f'mask index {int(arr[bad][0])} is out of range for {length} masks')
    return np.where(arr < 0, arr + length, arr)


def check_cat(cls: type, masks: Sequence[BaseInstanceMasks]) -> tuple[int, int]:
    """Validate the inputs of ``cat`` -> their common (height, width)."""
    if isinstance(masks, BaseInstanceMasks) or len(masks) == 0:
        raise ValueError(f'{cls.__name__}.cat expects a non-empty list of {cls.__name__}')
    for i, m in enumerate(masks):
        if not isinstance(m, cls):
            raise TypeError(f'{cls.__name__}.cat: item {i} is a {type(m).__name__}')
    shapes = {(m.height, m.width) for m in masks}
    if len(shapes) != 1:
        raise ValueError(f'{cls.__name__}.cat: masks lie on different canvases {sorted(shapes)}')
    return shapes.pop()


def check_out_shape(out_shape: Sequence[int], op: str) -> tuple[int, int]:
    """Validate an ``(h, w)`` canvas size -> tuple of two ints."""
    if len(out_shape) != 2 or any(int(s) != s or s < 0 for s in out_shape):
        raise ValueError(
            f'{op}: out_shape must be (height, width) of non-negative ints, got {out_shape!r}'
        )
    return int(out_shape[0]), int(out_shape[1])


def check_direction(direction: str, allowed: Sequence[str]) -> str:
    """Raise a ValueError naming ``direction`` unless it is one of ``allowed``."""
    if direction not in allowed:
        raise ValueError(f'direction must be one of {tuple(allowed)}, got {direction!r}')
    return direction


def crop_window(height: int, width: int, bbox: np.ndarray) -> tuple[int, int, int, int]:
    """Clip ``bbox`` int [x1, y1, x2, y2] to the canvas -> (x1, y1, w, h) of the crop, w, h >= 1.

    Same rule as mmdetection: a window outside the canvas keeps a one-pixel (empty) canvas.
    """
    box = np.asarray(bbox)
    if box.shape != (4,) or not np.issubdtype(box.dtype, np.number):
        raise ValueError(f'crop bbox must be an int array [x1, y1, x2, y2], got {bbox!r}')
    x1, x2 = np.clip(box[0::2].astype(np.int64), 0, width)
    y1, y2 = np.clip(box[1::2].astype(np.int64), 0, height)
    return int(x1), int(y1), int(max(x2 - x1, 1)), int(max(y2 - y1, 1))


def check_pad(height: int, width: int, out_shape: Sequence[int]) -> tuple[int, int]:
    """Validate a pad target that must contain the current canvas -> (h, w)."""
    out_h, out_w = check_out_shape(out_shape, 'pad')
    if out_h < height or out_w < width:
        raise ValueError(
            f'pad: out_shape {(out_h, out_w)} is smaller than the masks ({height}, {width})'
        )
    return out_h, out_w


def rotation_matrix(
    height: int, width: int, angle: float, center: tuple[float, float] | None, scale: float
) -> np.ndarray:
    """2x3 float64 affine matrix of cv2.getRotationMatrix2D in pixel-index coordinates."""
    import cv2

    if center is None:
        center = ((width - 1) * 0.5, (height - 1) * 0.5)
    return cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle), float(scale))


def as_roi_inputs(
    bboxes: torch.Tensor | np.ndarray, inds: torch.Tensor | np.ndarray, num_masks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate crop_and_resize inputs -> (float64 ndarray[K, 4], int64 ndarray[K])."""
    if isinstance(bboxes, torch.Tensor):
        bboxes = bboxes.detach().float().cpu().numpy()
    if isinstance(inds, torch.Tensor):
        inds = inds.detach().cpu().numpy()
    boxes = np.asarray(bboxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    idx = np.asarray(inds).reshape(-1).astype(np.int64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'crop_and_resize: bboxes must be [K, 4], got shape {boxes.shape}')
    if len(idx) != len(boxes):
        raise ValueError(f'crop_and_resize: {len(boxes)} bboxes but {len(idx)} inds')
    if len(idx) and (idx.min() < 0 or idx.max() >= num_masks):
        raise IndexError(
            f'crop_and_resize: inds must lie in [0, {num_masks}), got [{idx.min()}, {idx.max()}]'
        )
    return boxes, idx
