"""The interface of the instance-mask containers, and what the pixel containers share.

Pixel convention (all containers): pixel ``(row i, column j)`` covers the continuous square
``[j, j + 1) x [i, i + 1)``; a pixel belongs to a polygon when its centre ``(j + 0.5, i + 0.5)``
lies inside (what pycocotools rasterises). Every resampling (resize, translate, rotate, RoI
targets) samples at pixel centres, so polygons, bitmaps and RLEs give the same pixels up to
edge rounding, and bitmaps and RLEs give exactly the same pixels.

Containers register by class name in :data:`MASK_TYPES` when they are defined, so ``to_bitmap``,
``to_rle_masks`` and ``to_polygons`` reach each other's classes without importing their modules.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch

from .conversions import roi_targets, window_to_polygons
from .geometry import CanvasMap, check_out_shape, rotate_window, rotation_matrix

IndexLike = Any  # int, slice, list[int], np.ndarray (int or bool), torch.Tensor (int or bool)
Shape = tuple[int, int]  # (height, width)
Point = tuple[float, float]  # (x, y)
Device = torch.device | str
Window = tuple[np.ndarray, int, int]  # one instance's uint8 pixels [h, w] at (y0, x0)
MASK_TYPES: dict[str, type[BaseInstanceMasks]] = {}


class BaseInstanceMasks(metaclass=ABCMeta):
    """N instance masks on one ``height x width`` canvas; every operation returns a new container.

    Subclasses: :class:`PolygonMasks`, :class:`BitmapMasks`, :class:`RLEMasks`. Resize, flip,
    crop, pad and translate are steps of one :class:`CanvasMap` that each container applies.
    """

    height: int
    width: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MASK_TYPES[cls.__name__] = cls

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
    def empty(cls, height: int, width: int) -> BaseInstanceMasks:
        """A container with no instance on a ``height x width`` canvas."""
        return cls([], height, width)

    @property
    def _canvas_map(self) -> CanvasMap:
        """Map from the stored pixels to the current canvas (eager containers: the identity)."""
        return CanvasMap.identity(self.height, self.width)

    @abstractmethod
    def _moved(self, canvas_map: CanvasMap) -> BaseInstanceMasks:
        """The masks seen through ``canvas_map``, a step (or chain) after ``_canvas_map``."""

    def resize(self, out_shape: Shape) -> BaseInstanceMasks:
        """Scale the content to an ``(h, w)`` canvas (nearest pixel centre)."""
        return self._moved(self._canvas_map.resize(out_shape))

    def rescale(self, scale: float) -> BaseInstanceMasks:
        """Resize by ``scale`` keeping the aspect ratio; new size ``int(size * scale + 0.5)``."""
        if not isinstance(scale, Real) or scale <= 0:
            raise ValueError(f'rescale expects a positive float scale, got {scale!r}')
        return self.resize((int(self.height * scale + 0.5), int(self.width * scale + 0.5)))

    def flip(self, direction: str = 'horizontal') -> BaseInstanceMasks:
        """Mirror the canvas: 'horizontal' (left-right), 'vertical' (up-down) or 'diagonal'."""
        return self._moved(self._canvas_map.flip(direction))

    def crop(self, bbox: np.ndarray) -> BaseInstanceMasks:
        """Cut the window ``bbox`` = int [x1, y1, x2, y2] (clipped to the canvas); it becomes the
        new canvas of ``max(y2 - y1, 1) x max(x2 - x1, 1)`` pixels."""
        return self._moved(self._canvas_map.crop(bbox))

    def pad(self, out_shape: Shape) -> BaseInstanceMasks:
        """Grow the canvas to ``(h, w)`` with empty rows at the bottom, columns at the right."""
        return self._moved(self._canvas_map.pad(out_shape))

    def translate(
        self, out_shape: Shape, offset: float, direction: str = 'horizontal'
    ) -> BaseInstanceMasks:
        """Shift the content by ``offset`` pixels ('horizontal': along x, 'vertical': along y) on
        a new ``(h, w)`` canvas anchored at the top-left; content leaving the canvas is cut."""
        return self._moved(self._canvas_map.translate(out_shape, offset, direction))

    @abstractmethod
    def rotate(
        self, out_shape: Shape, angle: float, center: Point | None = None, scale: float = 1.0
    ) -> BaseInstanceMasks:
        """Rotate by ``angle`` degrees counter-clockwise (``cv2.getRotationMatrix2D``) around
        ``center`` = (x, y) in pixel-index coordinates (default: the canvas centre
        ``((w - 1) / 2, (h - 1) / 2)``), onto an ``(h, w)`` canvas."""

    @abstractmethod
    def crop_and_resize(
        self, bboxes: torch.Tensor, out_shape: Shape, inds: torch.Tensor, device: Device = 'cpu'
    ) -> torch.Tensor:
        """Mask-head targets: for each box ``bboxes[k]`` (Tensor[K, 4] float xyxy on this canvas)
        resample instance ``inds[k]`` inside the box to ``out_shape`` and binarise at 0.5
        -> float32 Tensor[K, h, w] of 0/1 on ``device``."""

    @abstractmethod
    def to_ndarray(self) -> np.ndarray:
        """All masks as uint8 ndarray[N, H, W] (allocates N full-size bitmaps)."""

    def to_tensor(self, dtype: torch.dtype = torch.uint8, device: Device = 'cpu') -> torch.Tensor:
        """All masks as Tensor[N, H, W] of ``dtype`` on ``device``."""
        return torch.from_numpy(self.to_ndarray()).to(dtype=dtype, device=device)

    def to_bitmap(self) -> BaseInstanceMasks:
        """The same masks as :class:`BitmapMasks` (allocates N full-size bitmaps)."""
        return MASK_TYPES['BitmapMasks'](self.to_ndarray(), self.height, self.width)

    def to_rle_masks(self) -> BaseInstanceMasks:
        """The same masks as :class:`RLEMasks` (pixel-exact)."""
        return MASK_TYPES['RLEMasks'](self.to_rle(), self.height, self.width)

    @abstractmethod
    def to_polygons(self) -> BaseInstanceMasks:
        """The masks as :class:`PolygonMasks`: one polygon per connected region, tracing its
        pixels' outline a quarter pixel inside, so that it rasterises back to the same pixels.
        Holes cannot be expressed by COCO polygons (their union is the mask): they are filled."""

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


class PixelMasks(BaseInstanceMasks):
    """Masks held as pixels (dense or run-length): RoI targets, rotation and outline tracing
    work on each instance's pixels in a window, cut by ``_window``."""

    @abstractmethod
    def _window(self, i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Current pixels [y0:y1, x0:x1] of instance ``i`` -> uint8 ndarray (do not write)."""

    @classmethod
    @abstractmethod
    def _from_windows(cls, windows: Sequence[Window | None], height: int, width: int):
        """One instance per window, on an otherwise empty canvas (None: an empty instance)."""

    def _tight_windows(self) -> list[Window | None]:
        """Each instance's pixels in its tight box, or None when it is empty."""
        boxes = self.get_bboxes().astype(np.int64).tolist()
        return [
            (self._window(i, y0, y1, x0, x1), y0, x0) if x1 > x0 else None
            for i, (x0, y0, x1, y1) in enumerate(boxes)
        ]

    def rotate(
        self, out_shape: Shape, angle: float, center: Point | None = None, scale: float = 1.0
    ) -> PixelMasks:
        out_h, out_w = check_out_shape(out_shape, 'rotate')
        matrix = rotation_matrix(self.height, self.width, angle, center, scale)
        windows = self._tight_windows()
        moved = [None if w is None else rotate_window(*w, matrix, out_h, out_w) for w in windows]
        return self._from_windows(moved, out_h, out_w)

    def crop_and_resize(
        self, bboxes: torch.Tensor, out_shape: Shape, inds: torch.Tensor, device: Device = 'cpu'
    ) -> torch.Tensor:
        boxes, idx = as_roi_inputs(bboxes, inds, len(self))
        return roi_targets(self._window, boxes, idx, out_shape, self.height, self.width, device)

    def to_polygons(self) -> BaseInstanceMasks:
        polys = [[] if w is None else window_to_polygons(*w) for w in self._tight_windows()]
        return MASK_TYPES['PolygonMasks']._trusted(polys, self.height, self.width)


def paint_windows(windows: Sequence[Window | None], height: int, width: int) -> np.ndarray:
    """Windows placed on empty canvases -> uint8 ndarray[len(windows), height, width]."""
    out = np.zeros((len(windows), height, width), dtype=np.uint8)
    for i, w in enumerate(windows):
        if w is not None:
            pixels, y0, x0 = w
            out[i, y0 : y0 + pixels.shape[0], x0 : x0 + pixels.shape[1]] = pixels
    return out


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


def check_cat(cls: type, masks: Sequence[BaseInstanceMasks]) -> Shape:
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
