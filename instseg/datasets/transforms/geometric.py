"""Geometric transforms that keep the image, boxes and masks consistent.

Every transform here moves ``img``, ``gt_bboxes`` (float32 [N, 4] xyxy) and ``gt_masks`` (a mask
container, kept compact) together, and keeps ``gt_bboxes_labels`` and ``gt_ignore_flags``
aligned when it drops instances. Each records its 3x3 pixel map in ``homography_matrix``
(composed with the earlier ones, as mmdetection does), so a point of the loaded image maps to
the output by ``homography_matrix @ (x, y, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import Pad as MMCVPad
from mmcv.transforms import RandomChoiceResize as MMCVRandomChoiceResize
from mmcv.transforms import RandomFlip as MMCVRandomFlip
from mmcv.transforms import RandomResize as MMCVRandomResize
from mmcv.transforms import Resize as MMCVResize

from instseg.registry import TRANSFORMS
from instseg.structures.masks import PolygonMasks

# Keys indexed per instance, in the order a transform that drops instances updates them.
INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_masks')


def record_homography(results: dict, matrix: np.ndarray) -> None:
    """Compose a 3x3 pixel map onto ``results['homography_matrix']`` (float32)."""
    previous = results.get('homography_matrix')
    matrix = np.asarray(matrix, dtype=np.float32)
    results['homography_matrix'] = matrix if previous is None else matrix @ previous


def keep_instances(results: dict, keep: np.ndarray) -> None:
    """Index every per-instance key of ``results`` with the bool or int array ``keep``."""
    for key in INSTANCE_KEYS:
        if results.get(key) is not None:
            results[key] = results[key][keep]


def _as_tuple(value: object) -> object:
    """Config lists -> tuples, nested once (mmcv checks for tuples of ints)."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


@TRANSFORMS.register_module()
class Resize(MMCVResize):
    """Resize ``img`` and, with it, ``gt_bboxes`` (scaled, optionally clipped) and ``gt_masks``.

    ``scale`` is (w, h); with ``keep_ratio`` it is read as (long edge, short edge) limits, as
    :func:`mmcv.rescale_size` does (e.g. (1333, 800)). ``scale_factor`` (float or (w, h) tuple)
    is used when ``scale`` is None. Sets ``img_shape`` (h, w) and ``scale_factor``
    (w_scale, h_scale) of this resize; masks are resized to exactly ``img_shape``.
    """

    def __init__(
        self,
        scale: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        keep_ratio: bool = False,
        clip_object_border: bool = True,
        backend: str = 'cv2',
        interpolation: str = 'bilinear',
    ) -> None:
        if isinstance(scale_factor, int):
            scale_factor = float(scale_factor)
        super().__init__(
            scale=_as_tuple(scale),
            scale_factor=_as_tuple(scale_factor),
            keep_ratio=keep_ratio,
            clip_object_border=clip_object_border,
            backend=backend,
            interpolation=interpolation,
        )

    def _resize_bboxes(self, results: dict) -> None:
        """Resize ``gt_masks`` and scale ``gt_bboxes`` (mmcv's transform calls this after the
        image, with ``img_shape`` and ``scale_factor`` set).

        Raster masks are resampled onto the new pixel grid: an edge lands up to half a pixel
        from where exact scaling puts it, and a downscale can skip a one-pixel tip. Each box
        therefore moves by as much as its mask's tight box moved beyond the exact scaling: a
        box that was its mask's tight box stays exactly that, and one drawn looser keeps its
        scaled margins. Boxes of empty or emptied masks, and of polygons (which scale exactly),
        are only scaled.
        """
        masks, bboxes = results.get('gt_masks'), results.get('gt_bboxes')
        height, width = results['img_shape'][:2]
        if masks is not None:
            results['gt_masks'] = masks.resize((height, width))
        if bboxes is None:
            return
        w_scale, h_scale = results['scale_factor']
        scale = np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
        bboxes = bboxes * scale
        if masks is not None and not isinstance(masks, PolygonMasks):
            before, after = masks.get_bboxes(), results['gt_masks'].get_bboxes()
            drawn = (before[:, 2] > before[:, 0]) & (after[:, 2] > after[:, 0])
            bboxes[drawn] += after[drawn] - before[drawn] * scale
        if self.clip_object_border:
            bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, width)
            bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, height)
        results['gt_bboxes'] = bboxes.astype(np.float32)

    def transform(self, results: dict) -> dict:
        """Resize image, masks, boxes (and mmcv's seg map / keypoints if present)."""
        results = super().transform(results)
        w_scale, h_scale = results['scale_factor']
        record_homography(results, np.diag([w_scale, h_scale, 1.0]))
        return results


def _build_resize(resize_type: str, resize_kwargs: dict) -> BaseTransform:
    # mmcv would build ``Resize`` from its own registry outside instseg's scope, and mmcv's
    # Resize leaves masks alone: build from instseg's registry so the masks follow the image.
    return TRANSFORMS.build({'type': resize_type, 'scale': 0, **resize_kwargs})


@TRANSFORMS.register_module()
class RandomResize(MMCVRandomResize):
    """:class:`Resize` to a random scale.

    ``scale`` (w, h) with ``ratio_range`` (lo, hi): both sides times one ratio drawn from
    [lo, hi); or ``scale`` = [(w0, h0), (w1, h1)]: each side drawn between the two. Other
    keyword arguments (``keep_ratio``, ...) go to the ``resize_type`` transform.
    """

    def __init__(
        self,
        scale: tuple[int, int] | Sequence[tuple[int, int]],
        ratio_range: tuple[float, float] | None = None,
        resize_type: str = 'Resize',
        **resize_kwargs,
    ) -> None:
        scale = _as_tuple(scale)
        self.ratio_range = _as_tuple(ratio_range)
        if isinstance(scale, tuple) and all(isinstance(s, int) for s in scale):
            if self.ratio_range is None or len(self.ratio_range) != 2:
                raise ValueError(
                    f'RandomResize: scale={scale} needs ratio_range=(min, max), got {ratio_range!r}'
                )
        elif isinstance(scale, tuple) and len(scale) == 2:
            scale = list(scale)  # mmcv samples between the two corners of a list
        else:
            raise ValueError(
                f'RandomResize: scale must be (w, h) with ratio_range, or [(w0, h0), (w1, h1)]; '
                f'got {scale!r}'
            )
        self.scale = scale
        self.resize_cfg = dict(type=resize_type, **resize_kwargs)
        self.resize = _build_resize(resize_type, resize_kwargs)


@TRANSFORMS.register_module()
class RandomChoiceResize(MMCVRandomChoiceResize):
    """:class:`Resize` to a scale drawn uniformly from ``scales`` (e.g. the multi-scale list
    ``[(1333, 480), ..., (1333, 800)]``); other keyword arguments go to ``resize_type``.
    Adds ``scale_idx``, the index of the drawn scale."""

    def __init__(
        self,
        scales: Sequence[int | tuple[int, int]],
        resize_type: str = 'Resize',
        **resize_kwargs,
    ) -> None:
        # As mmcv: a list holds the candidates, a lone tuple (w, h) or int is the only one.
        scales = [_as_tuple(s) for s in scales] if isinstance(scales, list) else [scales]
        if not scales:
            raise ValueError('RandomChoiceResize: scales must list at least one scale')
        self.scales = scales
        self.resize_cfg = dict(type=resize_type, **resize_kwargs)
        self.resize = _build_resize(resize_type, resize_kwargs)


@TRANSFORMS.register_module()
class RandomFlip(MMCVRandomFlip):
    """Flip ``img``, ``gt_bboxes`` and ``gt_masks`` together with probability ``prob``.

    ``direction`` is 'horizontal', 'vertical', 'diagonal' or a list of them; ``prob`` a float
    (shared among the listed directions) or a list with one probability per direction.
    Sets ``flip`` (bool) and ``flip_direction`` (str or None).
    """

    def __init__(
        self,
        prob: float | Sequence[float] | None = None,
        direction: str | Sequence[str] = 'horizontal',
    ) -> None:
        # mmcv insists on floats; accept prob=1 or [0, 1] from configs too.
        if isinstance(prob, (int, float)) and not isinstance(prob, bool):
            prob = float(prob)
        elif isinstance(prob, Sequence):
            prob = [float(p) for p in prob]
        if isinstance(direction, tuple):
            direction = list(direction)
        super().__init__(prob=prob, direction=direction)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        direction = results['flip_direction']
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].flip(direction)
        h, w = results['img'].shape[:2]
        matrix = np.eye(3)
        if direction in ('horizontal', 'diagonal'):
            matrix[0] = [-1, 0, w]
        if direction in ('vertical', 'diagonal'):
            matrix[1] = [0, -1, h]
        record_homography(results, matrix)


@TRANSFORMS.register_module()
class Pad(MMCVPad):
    """Pad ``img`` (and ``gt_masks``, ``gt_seg_map``) at the bottom and right.

    Exactly one of: ``size`` (w, h); ``size_divisor`` (sides rounded up to a multiple);
    ``pad_to_square`` (optionally with ``size_divisor``). ``pad_val``: a number for the image, or
    ``dict(img=..., seg=..., masks=0)``. Sets ``pad_shape``, ``pad_fixed_size``,
    ``pad_size_divisor`` and, as mmcv does, ``img_shape`` to the padded shape. Boxes are
    unchanged.
    """

    def __init__(
        self,
        size: tuple[int, int] | None = None,
        size_divisor: int | None = None,
        pad_to_square: bool = False,
        pad_val: float | dict = dict(img=0, seg=255),  # noqa: B006 (mmcv's signature)
        padding_mode: str = 'constant',
    ) -> None:
        if pad_to_square and size is not None:
            raise ValueError('Pad: give size or pad_to_square, not both')
        if not pad_to_square and (size is None) == (size_divisor is None):
            raise ValueError(
                f'Pad: give exactly one of size and size_divisor (or pad_to_square), got '
                f'size={size!r}, size_divisor={size_divisor!r}'
            )
        if isinstance(pad_val, (int, float)):
            pad_val = dict(img=pad_val, seg=255)
        if dict(pad_val).get('masks', 0) != 0:
            raise ValueError(f'Pad: masks are padded with 0 only, got pad_val={pad_val!r}')
        super().__init__(
            size=_as_tuple(size),
            size_divisor=size_divisor,
            pad_to_square=pad_to_square,
            pad_val=dict(pad_val),
            padding_mode=padding_mode,
        )

    def transform(self, results: dict) -> dict:
        """Pad the image, seg map and masks to the same ``pad_shape``."""
        results = super().transform(results)
        if results.get('gt_masks') is not None:
            results['gt_masks'] = results['gt_masks'].pad(tuple(results['pad_shape'][:2]))
        return results
