"""Loading images and annotations into a pipeline's results dict."""

from __future__ import annotations

import numpy as np
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio
from pycocotools import mask as mask_utils

from instseg.datasets.bad_data import valid_polygons
from instseg.datasets.image_io import (
    COLOR_TYPES,
    BadImageError,
    MissingImageError,
    check_depth_scaling,
    load_image,
)
from instseg.registry import TRANSFORMS
from instseg.structures.masks import PolygonMasks, RLEMasks


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """Read ``img_path`` into ``img``: uint8 [H, W, 3] BGR whatever the file's depth or channels.

    Every file is decoded as stored (OpenCV; tifffile, where installed, for TIFFs OpenCV cannot
    read), then converted by explicit rules:

    - bit depth: 8-bit stays as is; 16-bit, 32-bit and float images are scaled to uint8 by
      ``depth_scaling``: ``'minmax'`` (default) maps each image's own min..max to 0..255,
      which suits microscopy that fills only part of its 16-bit range; ``'dtype'`` maps the
      type's full range (0..65535, or 0..1 for floats) so that brightness is comparable across
      images; ``(low, high)`` maps a fixed window (e.g. ``(0, 4095)`` for 12-bit cameras).
    - channels: gray is repeated into 3 channels; an alpha channel is dropped (pixels keep their
      stored colour, nothing is blended); channels are in BGR order, as DetDataPreprocessor
      expects.
    - orientation: the EXIF orientation is applied, so ``img`` is the image as viewers (and
      annotation tools) display it, and a COCO record's ``width`` / ``height`` describe that
      displayed image. ``color_type='color_ignore_orientation'`` keeps the stored pixel grid.

    When the results carry the record's ``height`` and ``width``, the loaded image must have
    that size, otherwise the annotations would not line up with it: a :class:`BadImageError`
    names the file and both sizes. Missing files raise :class:`MissingImageError` (a
    ``FileNotFoundError``); undecodable ones :class:`BadImageError`. :class:`CocoDataset`
    catches both, skips the image with a warning and counts it, unless it is ``strict``.

    Sets ``img``, ``img_shape`` and ``ori_shape`` (h, w).

    Args:
        to_float32: return float32 (values still 0..255) instead of uint8.
        color_type: ``'color'`` (3-channel BGR), ``'grayscale'`` (uint8 [H, W]), either with
            ``'_ignore_orientation'`` appended, or ``'unchanged'`` (the stored array: any
            dtype and channel count, no orientation; for custom pipelines).
        imdecode_backend: only ``'cv2'``.
        depth_scaling: ``'minmax'``, ``'dtype'`` or ``(low, high)``, see above.
        backend_args: mmengine file backend arguments.
    """

    def __init__(
        self,
        to_float32: bool = False,
        color_type: str = 'color',
        imdecode_backend: str = 'cv2',
        depth_scaling: str | tuple[float, float] = 'minmax',
        *,
        backend_args: dict | None = None,
    ) -> None:
        if color_type not in COLOR_TYPES:
            raise ValueError(f'color_type must be one of {COLOR_TYPES}, got {color_type!r}')
        if imdecode_backend != 'cv2':
            raise ValueError(
                f"imdecode_backend must be 'cv2' (tifffile is used for TIFFs OpenCV cannot "
                f'read), got {imdecode_backend!r}'
            )
        check_depth_scaling(depth_scaling)
        super().__init__(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            backend_args=backend_args,
        )
        self.depth_scaling = (
            depth_scaling if isinstance(depth_scaling, str) else tuple(depth_scaling)
        )

    def _read(self, path: str) -> np.ndarray:
        try:
            content = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise MissingImageError(f'{path}: image file not found') from err
        except OSError as err:
            raise BadImageError(f'{path}: cannot read the file ({err})') from err
        return load_image(content, path, self.color_type, self.depth_scaling)

    def _placeholder(self, results: dict) -> np.ndarray:
        shape = (results['height'], results['width'])
        if not self.color_type.startswith('grayscale'):
            shape += (3,)
        return np.zeros(shape, np.uint8)

    def _check_size(self, img: np.ndarray, results: dict) -> None:
        if 'height' not in results or 'width' not in results:
            return
        expected = (int(results['height']), int(results['width']))
        if img.shape[:2] == expected:
            return
        hint = ''
        if img.shape[:2] == expected[::-1]:
            hint = (
                '; the sizes are transposed: if the annotations were drawn on the stored pixel '
                'grid (EXIF orientation ignored), use LoadImageFromFile(color_type='
                "'color_ignore_orientation')"
            )
        raise BadImageError(
            f'{results["img_path"]}: image is {img.shape[0]}x{img.shape[1]} (h x w, after EXIF '
            f'orientation) but its record (img_id {results.get("img_id")}) says '
            f'{expected[0]}x{expected[1]}{hint}'
        )

    def transform(self, results: dict) -> dict:
        """Load ``results['img_path']``; with ``img_placeholder`` set (the dataset's stand-in
        for an unreadable test image) make a black image of the record's size instead."""
        if results.get('img_placeholder'):
            img = self._placeholder(results)
        else:
            img = self._read(results['img_path'])
            self._check_size(img, results)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(to_float32={self.to_float32}, '
            f'color_type={self.color_type!r}, depth_scaling={self.depth_scaling!r}, '
            f'backend_args={self.backend_args})'
        )


def _empty_rle(height: int, width: int) -> dict:
    return mask_utils.frPyObjects(
        {'size': [height, width], 'counts': [height * width]}, height, width
    )


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
        poly2mask: rasterise polygons to RLE; False keeps polygons, and an instance annotated as
            RLE (COCO's crowd regions) is marked ignored with an empty polygon, as in
            mmdetection.
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
                # PolygonMasks cannot hold an RLE mask; mmdetection ignores such instances
                polygons = [] if isinstance(segm, dict) else valid_polygons(segm or [])
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
            polygons = valid_polygons(segm)
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
