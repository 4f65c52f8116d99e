"""Drawing instance predictions or annotations onto an image with OpenCV.

Plain functions on numpy arrays, so the same overlay comes out of the visualizer, the tools and a
notebook. Images are RGB uint8 [H, W, 3] (mmengine's visualizer convention); colours are RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_util
import torch
from mmengine.fileio import get

from instseg.structures.predicted_masks import PredictedMasks

Color = tuple[int, int, int]


def make_palette(num_colors: int) -> list[Color]:
    """``num_colors`` distinct, saturated RGB colours (hues spread by the golden ratio)."""
    # Imported here: the datasets package is heavy and only its palette helper is needed.
    from instseg.datasets.coco import make_palette as dataset_palette

    return [tuple(int(c) for c in color) for color in dataset_palette(num_colors)]


def class_palette(dataset_meta: dict | None, num_classes: int) -> list[Color]:
    """The dataset's ``palette`` when it covers every class, else a generated one."""
    palette = (dataset_meta or {}).get('palette')
    if palette is not None and len(palette) >= num_classes:
        return [tuple(int(c) for c in color) for color in palette]
    return make_palette(max(num_classes, 1))


def read_rgb(img_path: str, backend_args: dict | None = None) -> np.ndarray:
    """The image at ``img_path`` as RGB uint8 [H, W, 3] (any bit depth is scaled to 8 bits)."""
    try:
        data = get(img_path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'Image {img_path} does not exist') from None
    image = mmcv.imfrombytes(data, flag='color', channel_order='rgb')
    if image is None:
        raise ValueError(f'Image {img_path} could not be decoded')
    return image


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def mask_at(masks: Any, index: int) -> np.ndarray:
    """Instance ``index`` of ``masks`` as a bool [H, W] array.

    ``masks`` may be a bool/uint8 tensor or array [K, H, W], a list of COCO RLE dicts or an
    instseg mask container; only the one instance is decoded.
    """
    if isinstance(masks, (torch.Tensor, np.ndarray)):
        return _to_numpy(masks[index]).astype(bool)
    if isinstance(masks, PredictedMasks):
        return masks[index].to_ndarray()[0]
    if isinstance(masks, (list, tuple)):
        rle = masks[index]
        if isinstance(rle.get('counts'), list):
            rle = mask_util.frPyObjects(rle, *rle['size'])
        return mask_util.decode(rle).astype(bool)
    return masks[[index]].to_ndarray()[0].astype(bool)


def _mask_window(masks: Any, index: int) -> tuple[np.ndarray, int, int]:
    """Instance ``index`` as (bool mask, x0, y0): only its window for :class:`PredictedMasks`
    (no full-size bitmap), the whole canvas at (0, 0) otherwise."""
    if isinstance(masks, PredictedMasks):
        return (*masks.window(index),)
    return mask_at(masks, index), 0, 0


def _text_color(background: Color) -> Color:
    # Dark text on light labels and the reverse, by the background's luma.
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def draw_instances(
    image: np.ndarray,
    bboxes: Any | None = None,
    labels: Any | None = None,
    scores: Any | None = None,
    masks: Any | None = None,
    classes: Sequence[str] | None = None,
    palette: Sequence[Color] | None = None,
    bbox_color: Color | None = None,
    mask_color: Color | None = None,
    text_color: Color | None = None,
    alpha: float = 0.5,
    line_width: int | None = None,
) -> np.ndarray:
    """Overlay masks, boxes and ``class score`` labels on a copy of ``image``.

    Args:
        image: RGB uint8 [H, W, 3] (grayscale [H, W] is expanded).
        bboxes: [K, 4] (x1, y1, x2, y2) in pixels of ``image``, tensor or array.
        labels: [K] 0-based class indices. Defaults to None (all drawn in the first colour).
        scores: [K] confidences shown after the class name. Defaults to None (names only).
        masks: K masks at ``image``'s size (see :func:`mask_at`). Defaults to None.
        classes: class names indexed by label. Defaults to None (the label number is shown).
        palette: RGB colour per class. Defaults to None (generated).
        bbox_color, mask_color, text_color: one RGB colour for every instance instead of the
            class colour (text: instead of black or white by contrast). Defaults to None.
        alpha: mask opacity in [0, 1]. Defaults to 0.5.
        line_width: box and contour thickness. Defaults to None (grows with the image size).

    Returns:
        RGB uint8 [H, W, 3]: the drawn image.
    """
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'draw_instances expects an RGB image [H, W, 3], got {image.shape}')
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    height, width = canvas.shape[:2]
    boxes = np.zeros((0, 4)) if bboxes is None else _to_numpy(bboxes).reshape(-1, 4)
    num = len(boxes) if bboxes is not None else (len(masks) if masks is not None else 0)
    labels_np = np.zeros(num, dtype=np.int64) if labels is None else _to_numpy(labels).reshape(-1)
    scores_np = None if scores is None else _to_numpy(scores).reshape(-1)
    if len(labels_np) != num or (scores_np is not None and len(scores_np) != num):
        raise ValueError(
            f'draw_instances: {num} instances but {len(labels_np)} labels'
            + ('' if scores_np is None else f' and {len(scores_np)} scores')
        )
    num_classes = max(len(classes or ()), int(labels_np.max(initial=-1)) + 1)
    palette = list(palette) if palette is not None else make_palette(max(num_classes, 1))
    if line_width is None:
        line_width = max(1, round(min(height, width) / 300))

    def color_of(label: int) -> Color:
        return tuple(int(c) for c in palette[label % len(palette)])

    if masks is not None:
        windowed = isinstance(masks, PredictedMasks)
        if windowed and (masks.height, masks.width) != (height, width):
            raise ValueError(
                f'draw_instances: masks are {(masks.height, masks.width)}, the image is '
                f'{(height, width)}'
            )
        for i in range(num):
            mask, x0, y0 = _mask_window(masks, i)
            if not windowed and mask.shape != (height, width):
                raise ValueError(
                    f'draw_instances: mask {i} is {mask.shape}, the image is {(height, width)}'
                )
            color = np.array(mask_color or color_of(labels_np[i]), dtype=np.float32)
            view = canvas[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
            region = view[mask].astype(np.float32)
            view[mask] = (region * (1.0 - alpha) + color * alpha).round().astype(np.uint8)
            contours, _ = cv2.findContours(
                mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
            )
            cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in color), line_width)

    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.3, min(height, width) / 800)
    for i in range(len(boxes)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        color = bbox_color or color_of(labels_np[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, line_width)
        label = int(labels_np[i])
        name = classes[label] if classes is not None and label < len(classes) else str(label)
        text = name if scores_np is None else f'{name} {scores_np[i]:.2f}'
        (tw, th), baseline = cv2.getTextSize(text, font, font_scale, 1)
        # Above the box when there is room, else just inside its top edge.
        top = y1 - th - baseline if y1 - th - baseline >= 0 else y1
        tx, ty = max(0, min(x1, width - tw)), max(0, top)
        cv2.rectangle(canvas, (tx, ty), (tx + tw, ty + th + baseline), color, cv2.FILLED)
        cv2.putText(
            canvas,
            text,
            (tx, ty + th),
            font,
            font_scale,
            text_color or _text_color(color),
            1,
            cv2.LINE_AA,
        )
    return canvas
