"""Where torchvision's detectors and instseg (= mmdetection 3.x) disagree, each pinned once here.

The converters and ``configs/mask_rcnn/mask_rcnn_r50_fpn*_torchvision.py`` follow these definitions;
``tests/models/converters/test_conventions.py`` checks the configs against them.

1. Background class. torchvision's box classifier has ``num_classes + 1`` outputs with background at
   index 0 and its mask predictor has a (never used) background channel 0; instseg's classifier puts
   background last (index ``num_classes``) and its box regressor and mask predictor have no
   background entries at all. :func:`background_last` and :func:`drop_background` move the rows.
2. Box pixel convention. Both libraries use continuous ``(x1, y1, x2, y2)`` coordinates with width
   ``x2 - x1`` (no ``+ 1``), so boxes need no conversion. torchvision's ``RoIAlign`` runs with
   ``aligned=False`` (a box corner ``c`` samples the feature map at ``c * scale``, without the
   half-pixel shift of ``aligned=True``) and ``sampling_ratio=2``: :data:`TORCHVISION_ROI_ALIGN`.
3. Box coder. torchvision's ``BoxCoder(weights=(wx, wy, ww, wh))`` divides the deltas by the
   weights where instseg's ``DeltaXYWHBBoxCoder`` multiplies by ``target_stds``, so
   ``target_stds = 1 / weights``: :func:`box_coder_stds`.
4. Channel order and normalisation. torchvision's detectors take RGB images scaled to [0, 1] and
   normalise with the ImageNet mean and std; instseg loads BGR images in 0-255, so its data
   preprocessor converts BGR to RGB (the first conv's weights stay as they are) and normalises
   with mean and std times 255: :func:`torchvision_normalisation`.
5. COCO labels. torchvision's COCO detectors have 91 outputs: background plus COCO category ids
   1..90, ten of which are unused. instseg (like mmdetection) numbers the 80 used categories
   0..79 in increasing id order: :data:`COCO_CATEGORY_IDS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

TORCHVISION_BACKGROUND_INDEX = 0

# torchvision's Fast R-CNN box coder weights (its RPN uses (1, 1, 1, 1)).
TORCHVISION_RCNN_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

TORCHVISION_ROI_ALIGN = dict(type='RoIAlign', sampling_ratio=2, aligned=False)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, images in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)

COCO_UNUSED_CATEGORY_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in COCO_UNUSED_CATEGORY_IDS)


def box_coder_stds(weights: Sequence[float]) -> tuple[float, ...]:
    """``DeltaXYWHBBoxCoder.target_stds`` equivalent to torchvision ``BoxCoder`` ``weights``."""
    return tuple(1.0 / w for w in weights)


def torchvision_normalisation() -> dict:
    """``DetDataPreprocessor`` arguments that reproduce torchvision's input normalisation."""
    return dict(
        mean=[round(m * 255, 4) for m in IMAGENET_MEAN],
        std=[round(s * 255, 4) for s in IMAGENET_STD],
        bgr_to_rgb=True,
    )


def background_last(rows: Tensor, group: int = 1) -> Tensor:
    """Move torchvision's background entry (the first ``group`` rows) to the end.

    rows [(C + 1) * group, ...] with background first -> the same shape, background last.
    """
    index = TORCHVISION_BACKGROUND_INDEX * group
    return torch.cat([rows[:index], rows[index + group :], rows[index : index + group]])


def drop_background(rows: Tensor, group: int = 1) -> Tensor:
    """Remove torchvision's background entry: [(C + 1) * group, ...] -> [C * group, ...]."""
    index = TORCHVISION_BACKGROUND_INDEX * group
    return torch.cat([rows[:index], rows[index + group :]])


def coco_rows(rows: Tensor, group: int = 1) -> Tensor:
    """Keep the rows of the 80 used COCO categories, in instseg's label order.

    rows [90 * group, ...] indexed by ``category_id - 1`` (torchvision without its background)
    -> [80 * group, ...] indexed by instseg's label.
    """
    keep = torch.tensor(COCO_CATEGORY_IDS, device=rows.device) - 1
    keep = (keep[:, None] * group + torch.arange(group, device=rows.device)).reshape(-1)
    return rows[keep]
