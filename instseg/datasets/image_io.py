"""Decoding image files of any bit depth and channel count into the network's uint8 input.

The loader decodes every file as stored (OpenCV ``IMREAD_UNCHANGED``, with tifffile as a
fallback for TIFFs OpenCV cannot read), then applies three explicit, documented steps: drop the
alpha channel, scale a deeper-than-8-bit image to uint8 (:func:`to_uint8`), and reach the asked
channel layout (3-channel BGR or 1-channel gray). EXIF orientation is read from the file's
header (a chunk scan for PNG, so the image is not decoded twice) and applied with numpy.
"""

from __future__ import annotations

import io
import struct
import warnings

import cv2
import numpy as np

# How a deeper-than-8-bit image becomes uint8; a (low, high) tuple is a fixed window.
DEPTH_SCALINGS = ('minmax', 'dtype')
COLOR_TYPES = (
    'color',
    'grayscale',
    'unchanged',
    'color_ignore_orientation',
    'grayscale_ignore_orientation',
)
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_TIFF_MAGICS = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
_EXIF_ORIENTATION = 0x0112


class BadImageError(OSError):
    """An image file that is missing, cannot be decoded, or disagrees with its record."""


class MissingImageError(BadImageError, FileNotFoundError):
    """An image file that does not exist."""


def decode_unchanged(content: bytes, path: str) -> np.ndarray:
    """File bytes -> the image as stored: [H, W] or [H, W, C] (BGR(A) order), native dtype.

    Raises:
        BadImageError: naming ``path`` when neither OpenCV nor (for TIFF) tifffile decodes it.
    """
    img = None
    if content:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None and content[:4] in _TIFF_MAGICS:
        img = _decode_tiff_with_tifffile(content)
    if img is not None and img.size == 0:  # tifffile reads some broken headers as 0 pixels
        img = None
    if img is None:
        kind = 'an empty file' if not content else 'not a decodable image'
        raise BadImageError(f'{path}: {kind} ({len(content)} bytes)')
    return img


def _decode_tiff_with_tifffile(content: bytes) -> np.ndarray | None:
    """TIFF bytes -> [H, W] or [H, W, C] BGR(A), or None when tifffile is missing or fails."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        img = np.asarray(tifffile.imread(io.BytesIO(content), key=0))  # first page only
    except Exception:  # tifffile raises many types; any failure means "not readable"
        return None
    if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[2] > 4:
        img = np.moveaxis(img, 0, -1)  # planar (separate) RGB(A) samples
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[..., [2, 1, 0, 3][: img.shape[2]]]  # tifffile gives RGB(A)
    return np.ascontiguousarray(img)


def exif_orientation(content: bytes) -> int:
    """The EXIF orientation (1-8) stored in image bytes; 1 when there is none."""
    from PIL import Image

    exif = Image.Exif()
    try:
        if content[:8] == _PNG_SIGNATURE:
            payload = _png_exif_payload(content)
            if payload is None:
                return 1
            exif.load(payload)
        else:
            # Opening is lazy: PIL reads the header (JPEG APP1, TIFF IFD0), not the pixels.
            # Its warnings about odd tags would repeat for every image of a dataset.
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                with Image.open(io.BytesIO(content)) as pil_img:
                    exif = pil_img.getexif()
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # an unreadable EXIF block means no usable orientation
        return 1
    return value if 1 <= value <= 8 else 1


def _png_exif_payload(content: bytes) -> bytes | None:
    # PIL would decode the whole PNG to find eXIf; walking the chunk headers skips the pixel
    # data (a few hundred headers at most), where searching the bytes would read all of it.
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(content):
        length, kind = struct.unpack_from('>I4s', content, pos)
        if kind == b'eXIf':
            return content[pos + 8 : pos + 8 + length]
        if kind == b'IEND':
            break
        pos += 12 + length  # length, type, data, crc
    return None


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate / flip ``img`` [H, W, ...] from its stored pixel grid to its displayed one."""
    if orientation in (5, 6, 7, 8):
        img = np.swapaxes(img, 0, 1)  # transpose: the displayed image is W x H
    # After the optional transpose, each case is a flip of rows and/or columns.
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        img = img[::-1]
    if flip_cols:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def to_uint8(img: np.ndarray, depth_scaling: str | tuple[float, float], path: str) -> np.ndarray:
    """Scale an image of any dtype to uint8 [same shape]; uint8 input is returned as is.

    ``depth_scaling``: ``'minmax'`` maps this image's own min..max (over all channels, NaN
    ignored) to 0..255, a constant image to 0; ``'dtype'`` maps the dtype's full range
    (0..65535 for uint16, 0..1 for floats) to 0..255; ``(low, high)`` maps that fixed window,
    clipping values outside it. Rounds to the nearest integer.
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise BadImageError(f'{path}: pixel type {img.dtype} cannot be scaled to uint8')
    if isinstance(depth_scaling, str) and depth_scaling == 'minmax':
        low, high = float(np.nanmin(img)), float(np.nanmax(img))
    elif isinstance(depth_scaling, str) and depth_scaling == 'dtype':
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            low, high = float(info.min), float(info.max)
        else:
            low, high = 0.0, 1.0
    else:
        low, high = (float(v) for v in depth_scaling)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros(img.shape, np.uint8)
    scaled = (img.astype(np.float32) - low) * (255.0 / (high - low))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def check_depth_scaling(depth_scaling: str | tuple[float, float] | list[float]) -> None:
    """Raise a ValueError unless ``depth_scaling`` is a known rule or a (low, high) window."""
    if isinstance(depth_scaling, str):
        if depth_scaling not in DEPTH_SCALINGS:
            raise ValueError(
                f'depth_scaling must be one of {DEPTH_SCALINGS} or (low, high), got '
                f'{depth_scaling!r}'
            )
        return
    if len(depth_scaling) != 2 or not float(depth_scaling[0]) < float(depth_scaling[1]):
        raise ValueError(f'depth_scaling window must be (low, high), low < high: {depth_scaling}')


def to_channels(img: np.ndarray, color: bool, path: str) -> np.ndarray:
    """[H, W] / [H, W, 1-4] -> [H, W, 3] BGR (``color``) or [H, W] gray; alpha is dropped.

    Gray becomes BGR by repeating it; gray+alpha keeps the gray; BGRA keeps BGR (transparent
    pixels keep their stored colour, nothing is blended).
    """
    if img.ndim == 3 and img.shape[2] in (1, 2):
        img = img[..., 0]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    elif img.ndim != 2 and not (img.ndim == 3 and img.shape[2] == 3):
        raise BadImageError(
            f'{path}: cannot make an image of shape {img.shape} into '
            f'{"3-channel BGR" if color else "grayscale"} (1-4 channels are supported)'
        )
    if color and img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if not color and img.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(img)


def load_image(
    content: bytes,
    path: str,
    color_type: str = 'color',
    depth_scaling: str | tuple[float, float] = 'minmax',
) -> np.ndarray:
    """File bytes -> the network's image: uint8 [H, W, 3] BGR (``color*``), uint8 [H, W]
    (``grayscale*``) or, for ``'unchanged'``, the stored array untouched. EXIF orientation is
    applied unless ``color_type`` ends with ``_ignore_orientation`` or is ``'unchanged'``.
    """
    img = decode_unchanged(content, path)
    if color_type == 'unchanged':
        return img
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[..., : img.shape[2] - 1]  # drop alpha before min-max sees it
    img = to_uint8(img, depth_scaling, path)
    img = to_channels(img, color_type.startswith('color'), path)
    if not color_type.endswith('_ignore_orientation'):
        orientation = exif_orientation(content)
        if orientation != 1:
            img = apply_orientation(img, orientation)
    return img
