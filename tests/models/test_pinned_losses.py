"""Exact loss values of a seeded tiny Mask R-CNN and Cascade Mask R-CNN, pinned.

A refactor that changes the maths (initialisation, assignment, sampling, target encoding, loss
normalisation) changes these numbers and fails here, even when every shape test still passes.
When a change of the numbers is intended, regenerate them and paste the printed dicts below:

    python tests/models/test_pinned_losses.py
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData

from instseg.registry import MODELS
from instseg.structures import DetDataSample, PolygonMasks

MASK_RCNN = 'configs/_base_/models/mask_rcnn_r50_fpn.py'
CASCADE = 'configs/_base_/models/cascade_mask_rcnn_r50_fpn.py'
NUM_CLASSES = 3

PINNED = {
    'cascade': {
        'loss_rpn_bbox': 0.005872,
        'loss_rpn_cls': 0.694779,
        's0.loss_bbox': 0.135449,
        's0.loss_cls': 1.23181,
        's0.loss_mask': 1.391716,
        's1.loss_bbox': 0.042608,
        's1.loss_cls': 0.736536,
        's1.loss_mask': 0.792098,
        's2.loss_bbox': 0.004747,
        's2.loss_cls': 0.364198,
        's2.loss_mask': 0.476193,
    },
    'mask_rcnn': {
        'loss_bbox': 0.184568,
        'loss_cls': 1.404316,
        'loss_mask': 1.531255,
        'loss_rpn_bbox': 0.011932,
        'loss_rpn_cls': 0.698512,
    },
}


def _shrink(model: Config) -> Config:
    """ResNet-18, 32-channel FPN and heads: the base config's maths at a test's size."""
    model.backbone.update(depth=18, frozen_stages=-1, norm_eval=False)
    model.neck.update(in_channels=None, out_channels=32)
    model.rpn_head.update(in_channels=32, feat_channels=32)
    roi_head = model.roi_head
    roi_head.bbox_roi_extractor.out_channels = 32
    roi_head.mask_roi_extractor.out_channels = 32
    bbox_heads = (
        roi_head.bbox_head if isinstance(roi_head.bbox_head, list) else [roi_head.bbox_head]
    )
    for head in bbox_heads:
        head.update(in_channels=32, fc_out_channels=64, num_classes=NUM_CLASSES)
    roi_head.mask_head.update(
        num_convs=2, in_channels=32, conv_out_channels=32, num_classes=NUM_CLASSES
    )
    return model


def _samples() -> tuple[list[torch.Tensor], list[DetDataSample]]:
    """Two 96x128 images with four polygon instances, all from a fixed generator."""
    generator = torch.Generator().manual_seed(1234)
    images = [torch.randint(0, 256, (3, 96, 128), generator=generator, dtype=torch.uint8)]
    images.append(torch.randint(0, 256, (3, 96, 128), generator=generator, dtype=torch.uint8))
    layouts = [
        ([[8, 10, 50, 70], [60, 20, 120, 60]], [0, 2]),
        ([[30, 30, 90, 90], [5, 5, 35, 40]], [1, 0]),
    ]
    samples = []
    for boxes, labels in layouts:
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(96, 128),
                ori_shape=(96, 128),
                scale_factor=(1.0, 1.0),
                pad_shape=(96, 128),
            )  # fmt: skip
        )
        # Diamonds inside the boxes, so that masks differ from their boxes.
        polygons = [
            [np.array([(x1 + x2) / 2, y1, x2, (y1 + y2) / 2, (x1 + x2) / 2, y2, x1, (y1 + y2) / 2])]
            for x1, y1, x2, y2 in boxes
        ]
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.tensor(labels),
            masks=PolygonMasks(polygons, 96, 128),
        )
        samples.append(sample)
    return images, samples


def measure(name: str) -> dict[str, float]:
    """The losses of the seeded tiny model ``name`` ('mask_rcnn' or 'cascade') on `_samples`."""
    torch.manual_seed(0)
    cfg = _shrink(Config.fromfile(MASK_RCNN if name == 'mask_rcnn' else CASCADE).model)
    model = MODELS.build(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs one line per parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    model.train()
    images, samples = _samples()
    torch.manual_seed(1)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    with torch.no_grad():
        losses = model(**data, mode='loss')
    return {key: round(float(value), 6) for key, value in sorted(losses.items()) if 'loss' in key}


@pytest.mark.parametrize('name', sorted(PINNED))
def test_losses_are_pinned(name: str) -> None:
    measured = measure(name)
    assert sorted(measured) == sorted(PINNED[name])
    for key, expected in PINNED[name].items():
        assert measured[key] == pytest.approx(expected, rel=1e-4, abs=1e-6), (
            f'{name} {key}: {measured[key]} != pinned {expected}'
        )


if __name__ == '__main__':
    torch.set_num_threads(1)
    for model_name in sorted(PINNED):
        print(f"'{model_name}': {measure(model_name)},")
