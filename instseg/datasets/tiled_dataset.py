"""Training on images too large for one forward pass: a dataset of tiles cut from them."""

from __future__ import annotations

import copy

import numpy as np
from mmcv.transforms import Compose

from instseg.registry import DATASETS
from instseg.structures.tiles import as_tile_size, tile_windows

from .transforms import CropTile

TILE_MODES = ('sliding', 'random')


@DATASETS.register_module()
class TiledDataset:
    """Tiles of a dataset's (large) images, each with the annotations inside it.

    The wrapped dataset's pipeline runs with a :class:`CropTile` inserted right after its
    ``LoadAnnotations`` (after ``LoadImageFromFile`` when there is none): the image and its
    annotations are cut to the tile there, and instances the tile border cuts stay targets when
    ``min_visible`` of them remains, else become ignore regions.

    Args:
        dataset: the dataset config (any registered dataset, e.g. ``CocoDataset``) or object.
        tile_size: tile (h, w) or one int. Images smaller than a tile give one tile of their size.
        overlap: pixels shared by neighbouring tiles in ``'sliding'`` mode. Defaults to 0.
        mode: ``'sliding'``: every tile of the :func:`tile_windows` grid, in order;
            ``'random'``: ``tiles_per_image`` tiles per image at uniformly drawn offsets, drawn
            anew each time an item is read. Defaults to 'sliding'.
        tiles_per_image: tiles per image and epoch in ``'random'`` mode. Defaults to None (as
            many as the sliding grid has).
        min_visible: see :class:`CropTile`. Defaults to 0.5.
        skip_empty: leave out tiles that contain no instance's box centre ('sliding'); in
            'random' mode such a draw is repeated up to 10 times. Defaults to True.
    """

    def __init__(
        self,
        dataset: dict,
        tile_size: int | tuple[int, int],
        overlap: int = 0,
        mode: str = 'sliding',
        tiles_per_image: int | None = None,
        min_visible: float = 0.5,
        skip_empty: bool = True,
    ) -> None:
        if mode not in TILE_MODES:
            raise ValueError(f'TiledDataset: mode must be one of {TILE_MODES}, got {mode!r}')
        if tiles_per_image is not None and (mode != 'random' or tiles_per_image < 1):
            raise ValueError(
                f"TiledDataset: tiles_per_image={tiles_per_image!r} needs mode='random' and >= 1"
            )
        self.tile_size = as_tile_size(tile_size, 'TiledDataset: tile_size')
        self.overlap = int(overlap)
        self.mode = mode
        self.tiles_per_image = tiles_per_image
        self.skip_empty = skip_empty
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.pipeline = _with_crop_tile(self.dataset.pipeline, CropTile(min_visible))
        self._tiles: list[tuple[int, np.ndarray]] = []
        for idx in range(len(self.dataset)):
            info = self.dataset.get_data_info(idx)
            windows = tile_windows(info['height'], info['width'], self.tile_size, self.overlap)
            if mode == 'random':
                count = tiles_per_image or len(windows)
                self._tiles.extend((idx, None) for _ in range(count))
                continue
            if skip_empty:
                windows = windows[_holds_a_centre(windows, _boxes(info))]
            self._tiles.extend((idx, w) for w in windows)
        if not self._tiles:
            raise ValueError(
                f'TiledDataset: no tile of {self.tile_size} holds an instance in the '
                f'{len(self.dataset)} images of the dataset (skip_empty=True)'
            )

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        self.dataset.full_init()

    def __len__(self) -> int:
        return len(self._tiles)

    def _window(self, idx: int, info: dict) -> np.ndarray:
        img_idx, window = self._tiles[idx]
        if window is not None:
            return window
        tile_h = min(self.tile_size[0], info['height'])
        tile_w = min(self.tile_size[1], info['width'])
        boxes = _boxes(info)
        for _ in range(10):
            x0 = np.random.randint(0, info['width'] - tile_w + 1)
            y0 = np.random.randint(0, info['height'] - tile_h + 1)
            window = np.array([[x0, y0, x0 + tile_w, y0 + tile_h]], dtype=np.int64)
            if not self.skip_empty or _holds_a_centre(window, boxes)[0]:
                break
        return window[0]

    def get_data_info(self, idx: int) -> dict:
        """The record of tile ``idx``: its image's record (``height`` and ``width`` stay the
        image's, which the loader checks) with ``tile`` (x0, y0, x1, y1); a random tile is drawn
        here."""
        img_idx = self._tiles[idx][0]
        info = copy.deepcopy(self.dataset.get_data_info(img_idx))
        window = self._window(idx, info)
        info['tile'] = window
        return info

    def __getitem__(self, idx: int) -> dict:
        for _ in range(10):
            results = self.pipeline(self.get_data_info(idx))
            if results is not None:
                return results
            idx = np.random.randint(len(self))  # a transform refused this tile: take another
        raise RuntimeError(f'TiledDataset: the pipeline refused 10 tiles in a row (last {idx})')


def _boxes(info: dict) -> np.ndarray:
    boxes = [inst['bbox'] for inst in info.get('instances', []) if not inst.get('ignore_flag')]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _holds_a_centre(windows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """bool [T]: whether window t holds the centre of at least one of the boxes [N, 4]."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = (
        (cx[None] >= windows[:, :1])
        & (cx[None] < windows[:, 2:3])
        & (cy[None] >= windows[:, 1:2])
        & (cy[None] < windows[:, 3:4])
    )
    return inside.any(axis=1)


def _with_crop_tile(pipeline: Compose, crop: CropTile) -> Compose:
    """``pipeline`` with ``crop`` after its LoadAnnotations (else after LoadImageFromFile)."""
    transforms = list(pipeline.transforms)
    names = [type(t).__name__ for t in transforms]
    if any(name == 'CropTile' for name in names):
        raise ValueError('TiledDataset adds CropTile itself; remove it from the pipeline')
    for anchor in ('LoadAnnotations', 'LoadImageFromFile'):
        if anchor in names:
            transforms.insert(names.index(anchor) + 1, crop)
            return Compose(transforms)
    raise ValueError(f'TiledDataset needs a LoadImageFromFile in the dataset pipeline, got {names}')
