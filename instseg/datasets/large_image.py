"""Reading an image window by window, so that tiled inference never needs it as one tensor.

Sources, and what each costs in memory:

- a numpy array (BGR uint8 [H, W, 3] or gray [H, W]): used as it is;
- ``.npy`` files: memory-mapped, each window read from disk;
- uncompressed TIFF (also BigTIFF) with ``tifffile`` installed: memory-mapped likewise;
  compressed or tiled TIFFs are decoded whole by tifffile;
- any other format OpenCV reads (PNG, JPEG, ...): decoded whole once (H x W x 3 bytes: 768 MB for
  16,000 x 16,000), then cut; only the windows become tensors.
"""

from __future__ import annotations

import os.path as osp
from pathlib import Path

import cv2
import numpy as np

MEMMAP_SUFFIXES = ('.npy', '.tif', '.tiff')


class LargeImage:
    """An image of ``height x width`` pixels read window by window as BGR uint8 [h, w, 3].

    Args:
        source: a file path or an array (BGR, as ``cv2.imread`` returns it, or gray).
    """

    def __init__(self, source: str | Path | np.ndarray) -> None:
        self.path = None if isinstance(source, np.ndarray) else str(source)
        if isinstance(source, np.ndarray):
            self._pixels, self.channel_order, self.lazy = source, 'bgr', False
        else:
            self._pixels, self.channel_order, self.lazy = _open(self.path)
        pixels = self._pixels
        if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)):
            raise ValueError(
                f'{self.path or "image array"}: expected [H, W] or [H, W, 1|3|4] pixels, got '
                f'shape {pixels.shape}'
            )
        if pixels.dtype != np.uint8:
            raise ValueError(
                f'{self.path or "image array"}: tiled inference reads 8-bit images, got '
                f'{pixels.dtype}; convert it to uint8 first'
            )
        self.height, self.width = int(pixels.shape[0]), int(pixels.shape[1])

    def read(self, window: tuple[int, int, int, int] | np.ndarray) -> np.ndarray:
        """Pixels of ``window`` (x0, y0, x1, y1) as a new BGR uint8 array [y1-y0, x1-x0, 3]."""
        x0, y0, x1, y1 = (int(v) for v in window)
        patch = np.asarray(self._pixels[y0:y1, x0:x1])
        if patch.ndim == 2:
            patch = patch[..., None]
        if patch.shape[2] == 1:
            return np.repeat(patch, 3, axis=2)
        patch = patch[..., :3]  # alpha dropped
        if self.channel_order == 'rgb':
            patch = patch[..., ::-1]
        return np.ascontiguousarray(patch)


def _open(path: str) -> tuple[np.ndarray, str, bool]:
    """(pixels, channel order, memory-mapped) of the image file ``path``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image {path} does not exist')
    suffix = Path(path).suffix.lower()
    if suffix == '.npy':
        return np.load(path, mmap_mode='r', allow_pickle=False), 'bgr', True
    if suffix in ('.tif', '.tiff'):
        try:
            import tifffile
        except ImportError:
            tifffile = None
        if tifffile is not None:
            try:
                return tifffile.memmap(path, mode='r'), 'rgb', True
            except ValueError:  # compressed or tiled: not memory-mappable
                return tifffile.imread(path), 'rgb', False
    pixels = cv2.imread(path, cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f'{path}: OpenCV could not decode it')
    return pixels, 'bgr', False
