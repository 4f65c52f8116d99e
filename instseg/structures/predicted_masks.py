"""Predicted instance masks kept as one small bitmap per detection, inside its box window.

A detector's masks are only non-zero inside their boxes, so K masks on an H x W image need the
boxes' area, not K x H x W: 1,000 nuclei on a 1000x1000 tile are ~0.3 MB here and 1 GB as a
dense BoolTensor. RLE, dense tensors and arrays are made from the windows on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from instseg.structures.masks.conversions import window_to_rle

IndexLike = int | slice | Sequence[int] | np.ndarray | Tensor


class PredictedMasks:
    """K binary masks on an ``height x width`` canvas, each stored as the bitmap of its window.

    Args:
        data: bool ndarray, the windows' pixels, row-major, window after window.
        windows: int64 [K, 4] (x0, y0, x1, y1), ends exclusive, inside the canvas. Pixels of a
            mask outside its window are False.
        height: canvas height H.
        width: canvas width W.

    ``len``, indexing (int, slice, index or bool arrays/tensors) and :meth:`cat` follow
    :class:`~mmengine.structures.InstanceData`'s rules, so the masks travel in
    ``pred_instances`` next to ``bboxes`` and ``scores``.
    """

    def __init__(self, data: np.ndarray, windows: np.ndarray, height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        windows = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
        data = np.asarray(data, dtype=bool).reshape(-1)
        sizes = (windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1])
        bad = (
            (windows[:, 0] < 0)
            | (windows[:, 1] < 0)
            | (windows[:, 2] > self.width)
            | (windows[:, 3] > self.height)
            | (windows[:, 2] < windows[:, 0])
            | (windows[:, 3] < windows[:, 1])
        )
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f'PredictedMasks: window {i} {windows[i].tolist()} is not inside the '
                f'{self.height}x{self.width} canvas'
            )
        if int(sizes.sum()) != data.size:
            raise ValueError(
                f'PredictedMasks: the windows hold {int(sizes.sum())} pixels, data has {data.size}'
            )
        self._data = data
        self._windows = windows
        self._starts = np.concatenate([[0], np.cumsum(sizes)])

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_patches(
        cls,
        patches: Sequence[Tensor | np.ndarray],
        windows: np.ndarray | Tensor | Sequence,
        height: int,
        width: int,
    ) -> PredictedMasks:
        """Bool patches [h_i, w_i] (tensors on any device, or arrays) at ``windows`` [K, 4]."""
        windows = np.asarray(
            windows.cpu() if isinstance(windows, Tensor) else windows, dtype=np.int64
        ).reshape(-1, 4)
        if len(patches) != len(windows):
            raise ValueError(f'{len(patches)} patches for {len(windows)} windows')
        if not len(patches):
            return cls(np.zeros(0, dtype=bool), windows, height, width)
        if all(isinstance(p, Tensor) for p in patches):
            # One device-to-host copy for all detections, not one per detection.
            data = torch.cat([p.reshape(-1) for p in patches]).to('cpu', torch.bool).numpy()
        else:
            data = np.concatenate([np.asarray(p, dtype=bool).reshape(-1) for p in patches])
        return cls(data, windows, height, width)

    @classmethod
    def from_dense(cls, masks: Tensor | np.ndarray) -> PredictedMasks:
        """Dense masks [K, H, W] -> each kept inside its tight box (empty masks: 0x0)."""
        if isinstance(masks, Tensor):
            masks = masks.detach().cpu().numpy()
        masks = np.asarray(masks).astype(bool, copy=False)
        if masks.ndim != 3:
            raise ValueError(f'masks must have shape [K, H, W], got {masks.shape}')
        windows, patches = [], []
        for mask in masks:
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if len(rows) == 0:
                windows.append((0, 0, 0, 0))
                patches.append(np.zeros(0, dtype=bool))
                continue
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            windows.append((x0, y0, x1, y1))
            patches.append(mask[y0:y1, x0:x1])
        return cls.from_patches(patches, np.array(windows), masks.shape[1], masks.shape[2])

    # ----------------------------------------------------------------- InstanceData protocol
    def __len__(self) -> int:
        return len(self._windows)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(K, H, W), the shape of the dense masks."""
        return len(self), self.height, self.width

    @property
    def windows(self) -> np.ndarray:
        """int64 [K, 4] (x0, y0, x1, y1): where each mask's bitmap lies (a copy)."""
        return self._windows.copy()

    @property
    def nbytes(self) -> int:
        """Bytes held by the pixels and windows."""
        return int(self._data.nbytes + self._windows.nbytes + self._starts.nbytes)

    def __getitem__(self, index: IndexLike) -> PredictedMasks:
        if isinstance(index, Tensor):
            index = index.cpu().numpy()
        if isinstance(index, (int, np.integer)):
            index = [index]
        idx = np.arange(len(self))[index]
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        starts, sizes = self._starts[idx], np.diff(self._starts)[idx]
        ends = np.cumsum(sizes)
        gather = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(
            starts - ends + sizes, sizes
        )
        return PredictedMasks(self._data[gather], self._windows[idx], self.height, self.width)

    def cat(self, masks_list: Sequence[PredictedMasks]) -> PredictedMasks:
        """Concatenate masks of the same canvas (the instance is only a handle, as in
        ``InstanceData.cat``)."""
        if not masks_list:
            raise ValueError('PredictedMasks.cat needs at least one PredictedMasks')
        shapes = {(m.height, m.width) for m in masks_list}
        if len(shapes) != 1:
            raise ValueError(f'PredictedMasks.cat: masks on different canvases {sorted(shapes)}')
        return PredictedMasks(
            np.concatenate([m._data for m in masks_list]),
            np.concatenate([m._windows for m in masks_list]),
            masks_list[0].height,
            masks_list[0].width,
        )

    # ----------------------------------------------------------------------------- reading
    def window(self, i: int) -> tuple[np.ndarray, int, int]:
        """Mask ``i`` as (bool [h, w] view of its window, x0, y0)."""
        x0, y0, x1, y1 = (int(v) for v in self._windows[i])
        patch = self._data[self._starts[i] : self._starts[i + 1]].reshape(y1 - y0, x1 - x0)
        return patch, x0, y0

    def to_ndarray(self) -> np.ndarray:
        """Dense bool ndarray [K, H, W] (K x H x W bytes: only for small images)."""
        out = np.zeros(self.shape, dtype=bool)
        for i in range(len(self)):
            patch, x0, y0 = self.window(i)
            out[i, y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
        return out

    def to_tensor(self, device: torch.device | str = 'cpu') -> Tensor:
        """Dense BoolTensor [K, H, W] on ``device``."""
        return torch.from_numpy(self.to_ndarray()).to(device)

    @property
    def areas(self) -> np.ndarray:
        """int64 [K]: foreground pixels of each mask."""
        running = np.concatenate([[0], np.cumsum(self._data, dtype=np.int64)])
        return running[self._starts[1:]] - running[self._starts[:-1]]

    def get_bboxes(self) -> np.ndarray:
        """float32 [K, 4]: tight xyxy box of each mask (x1 = last column + 1); zeros when empty."""
        out = np.zeros((len(self), 4), dtype=np.float32)
        for i in range(len(self)):
            patch, x0, y0 = self.window(i)
            rows, cols = np.flatnonzero(patch.any(axis=1)), np.flatnonzero(patch.any(axis=0))
            if len(rows):
                out[i] = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        return out

    def to_rle(self) -> list[dict]:
        """Compressed COCO RLE dicts at the canvas size; each costs its window, not H x W."""
        return [self._encode(i) for i in range(len(self))]

    def _encode(self, i: int) -> dict:
        patch, x0, y0 = self.window(i)
        return window_to_rle(patch, y0, x0, self.height, self.width)

    # ---------------------------------------------------------------------------- geometry
    def flip(self, direction: str) -> PredictedMasks:
        """Mirror the masks on their canvas: 'horizontal', 'vertical' or 'diagonal'."""
        flips = {'horizontal': (False, True), 'vertical': (True, False), 'diagonal': (True, True)}
        if direction not in flips:
            raise ValueError(f'unknown flip direction {direction!r}')
        flip_y, flip_x = flips[direction]
        windows = self._windows.copy()
        if flip_x:
            windows[:, [0, 2]] = self.width - self._windows[:, [2, 0]]
        if flip_y:
            windows[:, [1, 3]] = self.height - self._windows[:, [3, 1]]
        axes = tuple(axis for axis, on in ((0, flip_y), (1, flip_x)) if on)
        patches = [np.flip(self.window(i)[0], axes) for i in range(len(self))]
        return PredictedMasks.from_patches(patches, windows, self.height, self.width)

    def translate(self, dx: int, dy: int, height: int, width: int) -> PredictedMasks:
        """The masks moved by (dx, dy) pixels onto a ``height x width`` canvas; windows must
        stay inside it (as for a tile's masks placed into the whole image)."""
        windows = self._windows + np.array([dx, dy, dx, dy], dtype=np.int64)
        return PredictedMasks(self._data, windows, height, width)

    def __repr__(self) -> str:
        return (
            f'PredictedMasks({len(self)} masks on {self.height}x{self.width}, {self.nbytes} bytes)'
        )
