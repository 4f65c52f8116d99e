"""Each convention where torchvision and instseg differ, pinned against torchvision itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from instseg.checkpoint.convert import conventions as conv
from instseg.models.data_preprocessor import DetDataPreprocessor
from instseg.models.roi_heads.mask_heads import paste_masks
from instseg.models.task_modules import AnchorGenerator, DeltaXYWHBBoxCoder
from instseg.structures.det_data_sample import DetDataSample

CONFIGS = Path(__file__).resolve().parents[3] / 'configs' / 'mask_rcnn'


@pytest.fixture(scope='module')
def tv_cfg() -> Config:
    return Config.fromfile(CONFIGS / 'mask_rcnn_r50_fpn_torchvision.py')


def test_torchvision_config_uses_the_pinned_conventions(tv_cfg: Config) -> None:
    model = tv_cfg.model
    for key, value in conv.torchvision_normalisation().items():
        assert model.data_preprocessor[key] == value
    for extractor, size in (('bbox_roi_extractor', 7), ('mask_roi_extractor', 14)):
        assert model.roi_head[extractor].roi_layer == dict(
            conv.TORCHVISION_ROI_ALIGN, output_size=size
        )
    stds = conv.box_coder_stds(conv.TORCHVISION_RCNN_BOX_WEIGHTS)
    assert model.roi_head.bbox_head.bbox_coder.target_stds == pytest.approx(stds)
    assert model.rpn_head.bbox_coder.target_stds == [1.0] * 4  # torchvision's RPN weights
    assert model.rpn_head.anchor_generator.round_base_anchors is True
    rcnn = model.test_cfg.rcnn
    assert (rcnn.score_thr, rcnn.nms.iou_threshold, rcnn.max_per_img) == (0.05, 0.5, 100)
    rpn = model.test_cfg.rpn
    assert (rpn.nms_pre, rpn.max_per_img, rpn.nms.iou_threshold) == (1000, 1000, 0.7)
    v2 = Config.fromfile(CONFIGS / 'mask_rcnn_r50_fpn_v2_torchvision.py').model
    assert v2.data_preprocessor == model.data_preprocessor
    assert v2.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'


def test_anchors_equal_torchvision(tv_cfg: Config) -> None:
    cfg = dict(tv_cfg.model.rpn_head.anchor_generator)
    cfg.pop('type')
    ours = AnchorGenerator(**cfg)
    sizes = [(64, 80), (32, 40), (16, 20), (8, 10), (4, 5)]
    tv = TVAnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    images = ImageList(torch.zeros(1, 3, 256, 320), [(256, 320)])
    expected = tv(images, [torch.zeros(1, 1, h, w) for h, w in sizes])[0]
    assert torch.equal(torch.cat(ours.grid_priors(sizes)), expected)
    assert ours.base_anchors[0][0].tolist() == [-23.0, -11.0, 23.0, 11.0]
    unrounded = AnchorGenerator(**dict(cfg, round_base_anchors=False))
    assert unrounded.base_anchors[0][0].tolist() == pytest.approx(
        [-22.627, -11.314, 22.627, 11.314], abs=1e-3
    )


def test_box_coder_stds_equal_torchvision_weights() -> None:
    torch.manual_seed(0)
    xy = torch.rand(50, 2) * 100
    boxes = torch.cat([xy, xy + torch.rand(50, 2) * 50 + 1], dim=1)
    deltas = torch.randn(50, 8)  # two classes
    stds = conv.box_coder_stds(conv.TORCHVISION_RCNN_BOX_WEIGHTS)
    assert stds == pytest.approx((0.1, 0.1, 0.2, 0.2))
    ours = DeltaXYWHBBoxCoder(target_stds=stds).decode(boxes, deltas)
    tv = tv_utils.BoxCoder(conv.TORCHVISION_RCNN_BOX_WEIGHTS).decode(deltas, [boxes])
    torch.testing.assert_close(ours, tv.reshape(50, 8), atol=1e-4, rtol=1e-5)
    targets = tv_utils.BoxCoder(conv.TORCHVISION_RCNN_BOX_WEIGHTS).encode_single(boxes + 3, boxes)
    ours_targets = DeltaXYWHBBoxCoder(target_stds=stds).encode(boxes, boxes + 3)
    torch.testing.assert_close(ours_targets, targets, atol=1e-4, rtol=1e-5)


def test_normalisation_and_channel_order_equal_torchvision() -> None:
    torch.manual_seed(0)
    bgr = torch.randint(0, 256, (3, 40, 64), dtype=torch.uint8)
    pre = DetDataPreprocessor(**conv.torchvision_normalisation(), pad_size_divisor=1)
    ours = pre(dict(inputs=[bgr], data_samples=[DetDataSample()]))['inputs'][0]
    transform = GeneralizedRCNNTransform(40, 64, conv.IMAGENET_MEAN, conv.IMAGENET_STD)
    expected = transform.normalize(bgr.flip(0).float() / 255)  # torchvision reads RGB in [0, 1]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_background_rows_move_and_drop() -> None:
    cls = torch.arange(4.0)[:, None]  # torchvision: background, then classes 1..3
    assert conv.background_last(cls).flatten().tolist() == [1, 2, 3, 0]
    reg = torch.arange(16.0)[:, None]  # 4 deltas per class, background first
    assert conv.drop_background(reg, 4).flatten().tolist() == list(range(4, 16))
    # Softmax over the moved logits gives each class the probability torchvision gives it.
    logits = torch.randn(5, 4)
    tv_probs = logits.softmax(-1)
    ours = (logits @ torch.eye(4)[:, [1, 2, 3, 0]]).softmax(-1)
    torch.testing.assert_close(ours[:, :-1], tv_probs[:, 1:])


def test_coco_rows_follow_category_ids() -> None:
    assert len(conv.COCO_CATEGORY_IDS) == 80
    assert conv.COCO_CATEGORY_IDS[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
    rows = torch.arange(90.0 * 4).reshape(360, 1)  # row = 4 * (category_id - 1) + k
    kept = conv.coco_rows(rows, 4).reshape(80, 4)
    assert kept[11].tolist() == [48, 49, 50, 51]  # label 11 is category 13
    assert kept[79, 0] == 4 * 89  # label 79 is category 90


def test_torchvision_mask_paste_matches_torchvision() -> None:
    torch.manual_seed(0)
    masks = torch.rand(6, 28, 28)
    boxes = torch.tensor(
        [
            [10.3, 5.7, 60.2, 40.9],
            [-8.0, -3.5, 20.0, 30.0],  # partly outside the image
            [70.0, 30.0, 99.5, 59.9],
            [40.0, 40.0, 40.4, 41.0],  # thinner than a pixel
            [0.0, 0.0, 100.0, 60.0],
            [95.0, 55.0, 130.0, 80.0],
        ]
    )
    expected = paste_masks_in_image(masks[:, None], boxes, (60, 100))[:, 0]
    torch.testing.assert_close(
        paste_masks(masks, boxes, (60, 100), -1, mode='torchvision'), expected
    )
    binary = paste_masks(masks, boxes, (60, 100), 0.5, mode='torchvision')
    assert torch.equal(binary, expected >= 0.5)
    with pytest.raises(ValueError, match='mode'):
        paste_masks(masks, boxes, (60, 100), mode='opencv')
